"""Split decoded windows into sentence-sized segments using word timings.

The decoder reads up to 30 s of packed speech and, without timestamp tokens (which make Whisper
loop on nearly full windows), returns one segment per window. Subtitles, diarization and clients
want shorter segments, so we cut at sentence ends, at pauses, and never let one run too long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from audio_service.schema import Segment, Word

SENTENCE_END = (".", "?", "!", "。", "？", "！")
CLAUSE_END = (",", ";", ":", "，", "、")


@dataclass(frozen=True)
class SegmenterOptions:
    pause_s: float = 1.0  # a silence this long between words always ends a segment
    max_duration_s: float = 12.0  # longer segments are cut at their best break
    min_words: int = 2  # a sentence end does not cut before this many words


def resegment(
    segments: tuple[Segment, ...], encode: Callable[[str], list[int]] | None = None, opts: SegmenterOptions = SegmenterOptions()
) -> tuple[Segment, ...]:
    """New segments, numbered from 0, each a run of words of one input segment."""
    out: list[Segment] = []
    for seg in segments:
        if not seg.words:
            out.append(replace(seg, id=len(out)))
            continue
        for group in _split(list(seg.words), opts):
            text = "".join(w.word for w in group)
            out.append(
                replace(
                    seg,
                    id=len(out),
                    start=group[0].start,
                    end=max(group[-1].end, group[0].start),
                    text=text,
                    words=tuple(group),
                    tokens=tuple(encode(text)) if encode else seg.tokens,
                )
            )
    return tuple(out)


def _split(words: list[Word], opts: SegmenterOptions) -> list[list[Word]]:
    groups: list[list[Word]] = [[]]
    for i, w in enumerate(words):
        current = groups[-1]
        if current and w.start - current[-1].end >= opts.pause_s:
            groups.append([w])
            continue
        current.append(w)
        next_starts_later = i + 1 < len(words)
        if next_starts_later and len(current) >= opts.min_words and w.word.strip().endswith(SENTENCE_END):
            groups.append([])
    groups = [g for g in groups if g]
    result: list[list[Word]] = []
    for g in groups:
        result.extend(_cap(g, opts.max_duration_s))
    return result


def _cap(words: list[Word], max_s: float) -> list[list[Word]]:
    """Cut an over-long run at its best break: a clause end, else the widest gap between words."""
    if len(words) < 2 or words[-1].end - words[0].start <= max_s:
        return [words]

    def score(i: int) -> tuple[int, float]:  # break after words[i]
        return (words[i].word.strip().endswith(CLAUSE_END), words[i + 1].start - words[i].end)

    # only breaks that leave both halves at least a quarter of the run, so cuts make progress
    n = len(words)
    candidates = range(max(0, n // 4 - 1), min(n - 1, n - n // 4))
    best = max(candidates, key=score, default=n // 2 - 1)
    return _cap(words[: best + 1], max_s) + _cap(words[best + 1 :], max_s)
