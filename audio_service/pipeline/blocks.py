"""Long files in bounded memory: cut the decoded stream into blocks at silences.

A block ends in the last pause before its nominal end, and the audio after that pause is carried
into the next block, so no word is ever cut in two. Each block is transcribed on its own and the
parts are joined on the file's clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from audio_service.schema import Audio, Segment, SpeechSpan, Transcript

MIN_PAUSE_S = 0.3  # a cut needs at least this much silence around it


@dataclass(frozen=True)
class Block:
    offset: float  # where the block starts in the file, seconds
    audio: Audio
    spans: tuple[SpeechSpan, ...]  # speech in the block, on the block's clock


def speech_blocks(raw: Iterable[Audio], find_speech: Callable[[Audio], list[SpeechSpan]]) -> Iterator[Block]:
    """Blocks of ``raw`` audio cut in silence, each with its speech spans."""
    carry = np.zeros(0, np.float32)
    offset = 0.0
    items = iter(raw)
    current = next(items, None)
    while current is not None:
        following = next(items, None)
        audio = Audio(np.concatenate([carry, current.samples]) if carry.size else current.samples, current.sample_rate)
        spans = find_speech(audio)
        cut = audio.duration if following is None else _cut_point(spans, audio.duration)
        block = audio.slice(0.0, cut)
        kept = tuple(SpeechSpan(s.start, min(s.end, cut)) for s in spans if s.start < cut)
        yield Block(offset, block, kept)
        carry = audio.samples[len(block.samples) :]
        offset += block.duration
        current = following


def _cut_point(spans: list[SpeechSpan], duration: float) -> float:
    """The middle of the latest pause in the block (trailing silence included); the end if none."""
    if not spans:
        return duration
    inner = [(a.end, b.start) for a, b in zip(spans, spans[1:], strict=False)]
    gaps = [(0.0, spans[0].start), *inner, (spans[-1].end, duration)]
    for start, end in reversed(gaps):
        if end - start >= MIN_PAUSE_S:
            return (start + end) / 2
    return duration  # speech without any pause for a whole block: cut hard


def join(parts: list[tuple[float, Transcript]], duration: float) -> Transcript:
    """One transcript from block transcripts and their offsets; segment ids renumbered."""
    segments: list[Segment] = []
    for offset, part in parts:
        for seg in part.segments:
            words = tuple(replace(w, start=w.start + offset, end=w.end + offset) for w in seg.words)
            segments.append(replace(seg, id=len(segments), start=seg.start + offset, end=seg.end + offset, words=words))
    first = parts[0][1]
    return replace(first, duration=duration, segments=tuple(segments))


def merge_channels(parts: list[Transcript]) -> Transcript:
    """One transcript from the transcripts of a file's channels (``parts[c]`` is channel ``c``): every
    segment and word marked with its channel, the segments in time order (ids renumbered), so the text
    reads as the conversation went. The transcript's language is the one with the most speech; a
    segment in another language says so."""
    spoken: dict[str, float] = {}
    for part in parts:
        spoken[part.language] = spoken.get(part.language, 0.0) + sum(s.end - s.start for s in part.segments)
    main = max(parts, key=lambda p: spoken[p.language])
    marked = [
        replace(
            seg,
            channel=c,
            words=tuple(replace(w, channel=c) for w in seg.words),
            language=None if (seg.language or part.language) == main.language else (seg.language or part.language),
        )
        for c, part in enumerate(parts)
        for seg in part.segments
    ]
    ordered = sorted(marked, key=lambda s: (s.start, s.channel))
    segments = tuple(replace(s, id=i) for i, s in enumerate(ordered))
    duration = max(p.duration for p in parts)
    return replace(main, duration=duration, segments=segments).with_provenance(channels=str(len(parts)))
