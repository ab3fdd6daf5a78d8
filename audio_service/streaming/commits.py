"""Word-level commits: the words of the open segment that are final before the segment ends.

The open segment is re-decoded as it grows, alternately by the stream's own model and by its cheaper
draft model where the stream has one (an English-only draft for English streams). A word is committed
when two consecutive hypotheses agree on it at the same position after the words committed before it:
- read by one model, the same text, punctuation included (the older hypothesis' last word may differ
  in case and punctuation, when the newer one goes on after it: Whisper ends a hypothesis with a full
  stop where its audio ends);
- read by the two models, the same word, case and punctuation aside (the own hypothesis' last word,
  when the draft is the newer one, with the same punctuation); the words committed are always the own
  model's (its tokens are the forced prefix of the segment's final pass);
and the newer hypothesis heard a word after it (or the VAD heard the speech end before that
hypothesis' end: a pause), and it ends at least :data:`COMMIT_MARGIN_S` before the audio the newer
hypothesis heard. A newer own hypothesis is also checked against the own one before it,
so words the draft keeps getting wrong are committed one hypothesis later instead of never.
Two models agreeing is the evidence LocalAgreement takes from one model read twice, at half the cost:
a draft hypothesis costs about half an own one (whisper-tiny.en against whisper-base on this CPU).

Committed words never change: every later hypothesis and the segment's final pass are decoded with
them forced as the decoder prefix (the draft with their text in its own vocabulary), and whatever those
decodes make of that prefix, the segment keeps the committed words (text and times) and takes only the
rest from them (:meth:`Commits.settle`).

Each segment carries a :class:`Commits`, the state this module owns. Pure logic, no model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.cuts import norm
from audio_service.whisper.types import DecodedWord, DecodeResult

# Whisper's last word or two before the end of its audio are the least sure (a word cut off mid-way
# is guessed); a word ending this close to it waits for more audio even when two hypotheses agree.
COMMIT_MARGIN_S = 0.2
# A hypothesis of less audio than this is no evidence: on a segment's first half second of speech both
# models may guess alike (jfk's "what your country" read as "like your country" by whisper-base on a
# 0.6 s window and by whisper-tiny.en on a 1.0 s one, then committed).
MIN_EVIDENCE_S = 0.8


@dataclass(frozen=True)
class Reading:
    """One hypothesis of the segment with the committed words in place: its words, their text (stripped),
    and whether the stream's own model decoded it (only its words can be committed)."""

    words: tuple[DecodedWord, ...]
    own: bool

    @property
    def said(self) -> tuple[str, ...]:
        return tuple(w.word.strip() for w in self.words)


def _agree(newer: tuple[str, ...], older: tuple[str, ...], n: int, one_model: bool) -> bool:
    """Whether two hypotheses agree on their word ``n`` (see the module's rules)."""
    if not newer[n]:
        return False
    if newer[n] == older[n]:
        return True
    loose = not one_model or (n == len(older) - 1 and n + 1 < len(newer))
    return loose and bool(norm(newer[n])) and norm(newer[n]) == norm(older[n])


def _flat(words: tuple[DecodedWord, ...]) -> tuple[int, ...]:
    return tuple(t for w in words for t in w.tokens)


class Commits:
    """One segment's committed words (absolute times, the stream model's tokens) and the newest
    hypotheses they were checked against."""

    def __init__(self) -> None:
        self.words: tuple[DecodedWord, ...] = ()
        self._previous: Reading | None = None  # the newest hypothesis (either model)
        self._own: Reading | None = None  # the newest hypothesis of the own model

    @property
    def tokens(self) -> tuple[int, ...]:
        """The committed words' tokens: the forced decoder prefix of every later own-model decode of the segment."""
        return _flat(self.words)

    @property
    def text(self) -> str:
        """The committed words' text as decoded (leading spaces kept): the draft model's forced prefix."""
        return "".join(w.word for w in self.words)

    @property
    def until(self) -> int | None:
        """The sample where the last committed word ends (None: nothing committed)."""
        return int(round(self.words[-1].end * SAMPLE_RATE)) if self.words else None

    def observe(self, result: DecodeResult, end: int, own: bool = True, start: int = 0, pause: bool = False) -> int:
        """Take a hypothesis of the audio from sample ``start`` to ``end`` decoded with the committed words
        forced, by the stream's own model or (``own=False``) its draft; commit the words it agrees on with
        the hypothesis before it. ``pause``: the VAD heard the speech end before ``end`` (its last word
        may then be committed too). Returns how many it committed."""
        if end - start < MIN_EVIDENCE_S * SAMPLE_RATE:
            return 0
        reading = self._read(result, own)
        previous, own_before = self._previous, self._own
        self._previous = reading
        if own:
            self._own = reading
        if reading is None:
            return 0  # the decode dropped the committed prefix (silence, a loop cut): no evidence
        limit = end / SAMPLE_RATE - COMMIT_MARGIN_S
        k = len(self.words)
        if own:  # against the hypothesis before, and against the own one before that (the draft disagreed)
            n = max(self._agreed(reading, previous, limit, pause), self._agreed(reading, own_before, limit, pause))
            self.words += reading.words[k:n]
        elif own_before is not None:  # the draft confirms words of the newest own hypothesis
            n = self._agreed(reading, own_before, limit, pause)
            self.words += own_before.words[k:n]
        return len(self.words) - k

    def _read(self, result: DecodeResult, own: bool) -> Reading | None:
        """``result`` with the committed words in place; None when it does not start with them."""
        if own:
            if _flat(result.words)[: len(self.tokens)] != self.tokens:
                return None
            return Reading(self.settle(result).words, True)
        rest = self._after_text(result.words)
        return None if rest is None else Reading((*self.words, *rest), False)

    def _after_text(self, words: tuple[DecodedWord, ...]) -> tuple[DecodedWord, ...] | None:
        """``words`` after the committed ones, where they start with the committed words (case and
        punctuation aside: another model's reading of the same prefix); else None."""
        k = len(self.words)
        if len(words) < k or any(norm(a.word) != norm(b.word) for a, b in zip(words, self.words)):
            return None
        return words[k:]

    def _agreed(self, newer: Reading, older: Reading | None, limit: float, pause: bool) -> int:
        """How many leading words of ``newer`` can be final by its agreement with ``older`` (see the module)."""
        n = len(self.words)
        if older is None:
            return n
        words = newer.words if newer.own else older.words  # the own model's words are committed
        said, before = newer.said, older.said
        # the newer hypothesis' last word only in a pause (it heard nothing after it, and a word cut off by
        # the audio's end is a guess); the own hypothesis' last word, confirmed by the draft, only as the
        # draft spells it (Whisper's punctuation where its audio ends is a guess)
        top = min(len(said) - (0 if pause else 1), len(before))
        while n < top and _agree(said, before, n, newer.own == older.own) and words[n].end <= limit:
            if not newer.own and n == len(before) - 1 and said[n] != before[n]:
                break
            n += 1
        return n

    def settle(self, result: DecodeResult) -> DecodeResult:
        """``result`` (decoded with the committed tokens forced) with the committed words in place of what
        it made of them: the committed words unchanged, then its own words after them.

        Where the decode does not start with the committed tokens, its words after the committed words
        follow them when it starts with those words (the draft's reading), else its words that end after
        the last committed one (it dropped them, or a decode with a shorter prefix).
        """
        if not self.words:
            return result
        words, tokens = result.words, self.tokens
        rest: list[DecodedWord]
        if _flat(words)[: len(tokens)] != tokens:
            after = self._after_text(words)  # the draft's reading of the committed words, if it is one
            rest = list(after) if after is not None else [w for w in words if (w.start + w.end) / 2 > self.words[-1].end]
        else:
            n, seen = 0, 0  # words[:n] hold the first ``seen`` tokens of the prefix
            while seen + len(words[n].tokens) <= len(tokens):
                seen += len(words[n].tokens)
                n += 1
                if n == len(words):
                    break
            rest = list(words[n:])
            if seen < len(tokens):  # words[n] holds the prefix's last tokens and more (punctuation after it)
                word, last = words[n], self.words[-1].word
                extra = word.word[len(last) :] if word.word.startswith(last) else ""
                tail = word.tokens[len(tokens) - seen :]
                rest = ([replace(word, word=extra, start=word.end, tokens=tail)] if extra.strip() else []) + rest[1:]
        kept = (*self.words, *rest)
        return replace(result, text="".join(w.word for w in kept).strip(), words=kept)
