"""Put diarization's speakers on a transcript's words and segments.

A word gets the speaker whose turns overlap it most (the nearest turn when none overlaps it);
background turns (a speaker heard under a dominant one) never take a word, so overlapped words go
to the dominant voice. A segment whose words change speaker is split at each change, and lists in
``overlapping_speakers`` the others heard during it. New values are returned; nothing is mutated.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from audio_service.schema import Segment, SpeakerTurn, Transcript

MIN_OVERLAP_S = 0.2  # less background speech than this is not reported (segmentation edges)

L = TypeVar("L")
T = TypeVar("T")


def label_runs(labels: Sequence[L], items: Sequence[T]) -> list[tuple[L, list[T]]]:
    """Consecutive items that share a label, in order: ``[(label, [item, ...]), ...]`` (the one way
    words are split into same-speaker runs, for files and streams alike)."""
    pairs = zip(labels, items, strict=True)
    return [(label, [item for _, item in group]) for label, group in itertools.groupby(pairs, key=lambda p: p[0])]


def speaker_for(start: float, end: float, turns: list[SpeakerTurn]) -> str | None:
    """The speaker overlapping ``[start, end]`` most; the closest turn's speaker if none overlaps."""
    turns = [t for t in turns if not t.background]
    if not turns:
        return None
    overlap: dict[str, float] = {}
    for t in turns:
        o = min(end, t.end) - max(start, t.start)
        if o > 0:
            overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
    if overlap:
        return max(overlap, key=overlap.__getitem__)
    mid = (start + end) / 2
    return min(turns, key=lambda t: 0.0 if t.start <= mid <= t.end else min(abs(mid - t.start), abs(mid - t.end))).speaker


def assign_speakers(transcript: Transcript, turns: list[SpeakerTurn]) -> Transcript:
    """A transcript whose words and segments carry speakers, segments split where the speaker changes."""
    out: list[Segment] = []
    for segment in transcript.segments:
        for piece in _split(segment, turns):
            out.append(replace(piece, id=len(out), overlapping_speakers=overlapping(piece, turns)))
    return transcript.with_segments(tuple(out))


def overlapping(segment: Segment, turns: list[SpeakerTurn], min_s: float = MIN_OVERLAP_S) -> tuple[str, ...]:
    """Speakers other than the segment's own heard in the background during its words (>= ``min_s``)."""
    spans = [(w.start, w.end) for w in segment.words] or [(segment.start, segment.end)]
    heard: dict[str, float] = {}
    for t in turns:
        if t.background and t.speaker != segment.speaker:
            o = sum(max(0.0, min(b, t.end) - max(a, t.start)) for a, b in spans)
            heard[t.speaker] = heard.get(t.speaker, 0.0) + o
    return tuple(sorted(s for s, o in heard.items() if o >= min_s))


def _split(segment: Segment, turns: list[SpeakerTurn]) -> list[Segment]:
    if not segment.words:
        return [replace(segment, speaker=speaker_for(segment.start, segment.end, turns))]
    words = [replace(w, speaker=speaker_for(w.start, w.end, turns)) for w in segment.words]
    pieces = [run for _, run in label_runs([w.speaker for w in words], words)]
    if len(pieces) == 1:
        return [replace(segment, words=tuple(words), speaker=words[0].speaker)]
    # Token ids belong to the whole segment's decoding; a piece cannot keep them meaningfully.
    return [
        replace(
            segment,
            start=run[0].start if i else segment.start,
            end=run[-1].end if i < len(pieces) - 1 else segment.end,
            text="".join(w.word for w in run),
            words=tuple(run),
            tokens=(),
            speaker=run[0].speaker,
        )
        for i, run in enumerate(pieces)
    ]
