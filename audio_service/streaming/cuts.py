"""Cutting speech mid-word: which words of a decode belong to the segment on each side of a cut.

A checkpoint cuts speech wherever it arrives, often inside a word. Whisper mis-hears the last words
before an abrupt end ("what your coun|" -> "why you are") and the first words after an abrupt start,
so both sides of a cut are decoded with :data:`CUT_CONTEXT_S` of audio from across it, and each word
is given to the side its midpoint falls on: a cut costs at most the word it splits.

Each segment carries a :class:`CutEdges`, the state this module owns: the audio it decodes across a
cut and the words of the other side it must not repeat. Only the methods below change it.
"""

from __future__ import annotations

from dataclasses import replace

from audio_service.schema import SAMPLE_RATE
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


def repeated_lead(before: tuple[str, ...], words: list[str]) -> int:
    """How many of ``words`` repeat the last words of ``before`` (the longest such overlap)."""
    for k in range(min(len(before), len(words)), 0, -1):
        if tuple(words[:k]) == before[-k:]:
            return k
    return 0


class CutEdges:
    """One segment's edges at cuts (positions are absolute samples).

    A segment that starts at a cut decodes from ``audio_start`` (before its start) and keeps only the
    words from ``cut_start`` on; a segment that ends at a cut decodes to ``audio_end`` (after its end)
    when the stream goes on, and keeps only the words before ``cut_end``. A segment with no cut has
    neither and keeps every word.
    """

    def __init__(self) -> None:
        self.audio_start: int | None = None  # None: from the segment's start
        self.audio_end: int | None = None  # None: to the segment's end
        self.cut_start: int | None = None  # drop words whose midpoint is before this
        self.cut_end: int | None = None  # drop words whose midpoint is at or after this
        self.lead_words: tuple[str, ...] = ()  # the final words before the cut this segment continues from

    @classmethod
    def after_cut(cls, start: int, cut: int, held_from: int) -> CutEdges:
        """The edges of a segment starting at ``start``, right after a cut at ``cut``: it decodes the
        audio before the cut that is still held (``held_from`` on), up to CUT_CONTEXT of it."""
        edges = cls()
        edges.audio_start = max(held_from, cut - CUT_CONTEXT)
        edges.cut_start = start
        return edges

    def end_at_cut(self, end: int, lookahead: bool) -> None:
        """The segment was closed at ``end`` by a cut; ``lookahead``: the stream goes on, so its final
        pass may also decode the audio after the cut."""
        self.cut_end = end
        if lookahead:
            self.audio_end = end + CUT_CONTEXT

    def clip(self, result: DecodeResult, speakers: list[str] | None) -> tuple[DecodeResult, list[str] | None]:
        """Keep the words of ``result`` that belong to the segment (its audio may reach across a cut).

        A word belongs to the side of a cut its midpoint falls on, give or take CUT_TOLERANCE_S; words
        at the start that repeat the end of the segment before the cut (``lead_words``) are dropped.
        """
        if (self.cut_start is None and self.cut_end is None) or not result.words:
            return result, speakers
        lo = self.cut_start / SAMPLE_RATE - CUT_TOLERANCE_S if self.cut_start is not None else float("-inf")
        hi = self.cut_end / SAMPLE_RATE + CUT_TOLERANCE_S if self.cut_end is not None else float("inf")
        keep = [i for i, w in enumerate(result.words) if lo <= (w.start + w.end) / 2 < hi]
        keep = keep[repeated_lead(self.lead_words, [norm(result.words[i].word) for i in keep]) :]
        words = [result.words[i] for i in keep]
        if words and self.cut_start is not None:  # the alignment stretches edge words across the cut: clamp them
            cut_s = self.cut_start / SAMPLE_RATE
            words[0] = replace(words[0], start=max(words[0].start, min(cut_s, words[0].end)))
        text = "".join(w.word for w in words).strip()
        kept_speakers = [speakers[i] for i in keep] if speakers is not None and len(speakers) == len(result.words) else speakers
        return replace(result, text=text, words=tuple(words)), kept_speakers

    def hand_over(self, result: DecodeResult, nxt: CutEdges | None) -> None:
        """After the final pass of this segment (``result`` clipped to it), tell the segment after its
        cut (``nxt``, if that one starts at the cut) which words it must not repeat."""
        if self.cut_end is not None and nxt is not None and nxt.cut_start is not None:
            nxt.lead_words = tuple(norm(w.word) for w in result.words)
