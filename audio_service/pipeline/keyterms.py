"""Keyterms in a batch transcript without the hotwords' side effects on the other words.

Hotwords put the keyterms into Whisper's prompt, and a prompt changes the whole decode: on real speech
(``bench/keyterms.py``) it recalls more terms, but other words flip too, some for the worse. A file with
keyterms is therefore decoded twice, without and with the hotwords, and the first decode is kept except
where the two differ and only the second has a keyterm there: those spans come from the second. A word
that is no keyterm's can change only inside such a span, so the rest of the transcript is the plain
decode's.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from audio_service.schema import Segment, Transcript, Word


@dataclass(frozen=True)
class _Unit:
    """One word of a transcript: its segment, its text as written, and its timing when the segment has words."""

    segment: int
    text: str
    word: Word | None


def words_of(text: str) -> list[str]:
    """``text`` as lower-case words without punctuation; a hyphen separates words ("flour-fattened")."""
    return re.sub(r"[^\w\s]", " ", text.lower().replace("-", " ")).split()


def _key(text: str) -> str:
    # what the two decodes are aligned on: "Riesgo," and "riesgo" are the same word
    return re.sub(r"\W", "", text.lower())


def _has(words: list[str], term: list[str]) -> bool:
    return any(words[i : i + len(term)] == term for i in range(len(words) - len(term) + 1))


def _units(transcript: Transcript) -> list[_Unit]:
    out = []
    for i, s in enumerate(transcript.segments):
        if s.words:
            out += [_Unit(i, w.word, w) for w in s.words]
        else:
            out += [_Unit(i, t, None) for t in s.text.split()]
    return out


def keep_keyterms(plain: Transcript, biased: Transcript, keyterms: Sequence[str]) -> Transcript:
    """``plain`` (decoded without hotwords) with the spans of ``biased`` (decoded with them) that have a
    keyterm ``plain`` lacks at that place. A span goes into the plain segment where it starts.

    A span only replaces words: where the plain decode heard none, a keyterm is not added, since a
    prompt's words are sometimes echoed into silence or noise."""
    terms = [t for t in (words_of(k) for k in keyterms) if t]
    p, b = _units(plain), _units(biased)
    merged: list[list[_Unit]] = [[] for _ in plain.segments]
    matcher = difflib.SequenceMatcher(None, [_key(u.text) for u in p], [_key(u.text) for u in b], autojunk=False)
    changed: set[int] = set()
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        theirs = words_of(" ".join(u.text for u in b[j1:j2]))
        ours = words_of(" ".join(u.text for u in p[i1:i2]))
        if tag != "replace" or not any(_has(theirs, t) and not _has(ours, t) for t in terms):
            for u in p[i1:i2]:
                merged[u.segment].append(u)
            continue
        at = p[i1].segment
        merged[at] += [replace(u, segment=at) for u in b[j1:j2]]
        changed |= {at, *(u.segment for u in p[i1:i2])}
    if not changed:
        return plain
    # a segment whose every word went into a span placed in an earlier segment is dropped
    segments = [_rebuilt(s, merged[i]) if i in changed else s for i, s in enumerate(plain.segments) if merged[i]]
    return plain.with_segments(tuple(replace(s, id=i) for i, s in enumerate(segments)))


def _rebuilt(segment: Segment, units: list[_Unit]) -> Segment:
    """``segment`` holding ``units``: its text from them and, when it has word timings, their words (and
    its times widened to them: a span from the other decode may reach past it)."""
    if not segment.words:
        return replace(segment, text=" " + " ".join(u.text.strip() for u in units))
    words = tuple(u.word if u.word is not None else Word(segment.start, segment.start, " " + u.text.strip()) for u in units)
    start, end = min(segment.start, words[0].start), max(segment.end, words[-1].end)
    return replace(segment, text="".join(w.word for w in words), words=words, start=start, end=end)
