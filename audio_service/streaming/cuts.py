"""Cutting speech mid-word: which words of a decode belong to the segment on each side of a cut.

A checkpoint cuts speech wherever it arrives, often inside a word. Whisper mis-hears the last words
before an abrupt end ("what your coun|" -> "why you are") and the first words after an abrupt start,
so both sides of a cut are decoded with :data:`CUT_CONTEXT_S` of audio from across it, and each word
is given to the side its midpoint falls on: a cut costs at most the word it splits.
"""

from __future__ import annotations

from dataclasses import replace

from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.segment import StreamSegment
from audio_service.whisper.types import DecodeResult

CUT_CONTEXT_S = 1.0
CUT_CONTEXT_WAIT_S = 2.0  # a cut segment's final pass waits this long at most for the audio after the cut
# Cross-attention word times are off by up to a few tenths of a second, so each side also keeps the
# words this close past the cut; the side after the cut then drops the words the side before it has.
CUT_TOLERANCE_S = 0.3
CUT_CONTEXT = int(CUT_CONTEXT_S * SAMPLE_RATE)


def norm(word: str) -> str:
    """A word compared across hypotheses: lower case, letters, digits and apostrophes only."""
    return "".join(c for c in word.lower() if c.isalnum() or c == "'")


def clip(seg: StreamSegment, result: DecodeResult, speakers: list[str] | None) -> tuple[DecodeResult, list[str] | None]:
    """Keep the words of ``result`` that belong to the segment (its audio may reach across a cut).

    A word belongs to the side of a cut its midpoint falls on, give or take CUT_TOLERANCE_S; words
    at the start that repeat the end of the segment before the cut (``lead_words``) are dropped.
    """
    if not (seg.clip_start or seg.clip_end) or not result.words:
        return result, speakers
    lo = seg.start / SAMPLE_RATE - CUT_TOLERANCE_S if seg.clip_start else float("-inf")
    hi = (seg.end / SAMPLE_RATE + CUT_TOLERANCE_S) if seg.clip_end and seg.end is not None else float("inf")
    keep = [i for i, w in enumerate(result.words) if lo <= (w.start + w.end) / 2 < hi]
    keep = keep[repeated_lead(seg.lead_words, [norm(result.words[i].word) for i in keep]) :]
    words = [result.words[i] for i in keep]
    if words and seg.clip_start:  # the alignment stretches edge words across the cut: clamp them
        words[0] = replace(words[0], start=max(words[0].start, min(seg.start / SAMPLE_RATE, words[0].end)))
    text = "".join(w.word for w in words).strip()
    kept_speakers = [speakers[i] for i in keep] if speakers is not None and len(speakers) == len(result.words) else speakers
    return replace(result, text=text, words=tuple(words)), kept_speakers


def repeated_lead(before: tuple[str, ...], words: list[str]) -> int:
    """How many of ``words`` repeat the last words of ``before`` (the longest such overlap)."""
    for k in range(min(len(before), len(words)), 0, -1):
        if tuple(words[:k]) == before[-k:]:
            return k
    return 0


def hand_over(final: StreamSegment, result: DecodeResult, nxt: StreamSegment | None) -> None:
    """After the final pass of a segment cut at its end, tell the segment after the cut its words."""
    if final.clip_end and nxt is not None and nxt.clip_start:
        nxt.lead_words = tuple(norm(w.word) for w in result.words)
