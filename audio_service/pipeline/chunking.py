"""Pack speech spans into decoder windows, and map times in the packed audio back to the original.

Whisper's encoder always reads 30 s, so a 10 s window costs as much as a full one. Like
faster-whisper's own VAD path, we cut the silences out and pack the remaining speech into windows
of at most ``max_len`` seconds: fewer encoder passes, and the decoder never sees long silence
(where Whisper invents text). :class:`TimeMap` turns packed times back into original ones.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from audio_service.schema import Audio, SpeechSpan


@dataclass(frozen=True)
class Piece:
    """A span of the original audio and where it starts in the packed audio (seconds)."""

    start: float
    end: float
    packed_start: float


@dataclass(frozen=True)
class Packed:
    audio: Audio  # the speech only, concatenated
    windows: tuple[tuple[float, float], ...]  # decoder windows in packed time, each <= max_len
    pieces: tuple[Piece, ...]


def merge_spans(spans: list[SpeechSpan], min_gap: float = 0.0) -> list[SpeechSpan]:
    """Sort spans and merge those that overlap or lie closer than ``min_gap``."""
    merged: list[SpeechSpan] = []
    for s in sorted(spans, key=lambda s: s.start):
        if merged and s.start - merged[-1].end <= min_gap:
            merged[-1] = SpeechSpan(merged[-1].start, max(merged[-1].end, s.end))
        else:
            merged.append(s)
    return merged


MIN_WINDOW_S = 1.0  # a shorter window limit would cut speech into absurdly many pieces (and memory)


def split_long(spans: list[SpeechSpan], max_len: float) -> list[SpeechSpan]:
    """``spans`` cut into pieces of at most ``max_len`` (never under MIN_WINDOW_S) seconds."""
    max_len = max(max_len, MIN_WINDOW_S)
    out = []
    for s in spans:
        t = s.start
        while s.end - t > max_len:
            out.append(SpeechSpan(t, t + max_len))
            t += max_len
        out.append(SpeechSpan(t, s.end))
    return out


MIN_FILL = 0.5  # a window may end early, at a longer pause, once it holds half of max_len


def pack(audio: Audio, spans: list[SpeechSpan], max_len: float = 30.0, gap_s: float = 0.3) -> Packed:
    """Concatenate the speech of ``spans`` and group it into windows of at most ``max_len`` s.

    Pieces are joined with ``gap_s`` of silence: without it, word timing smears words across the
    joins (the first word after a cut gets timed into the piece before).
    """
    sr = audio.sample_rate
    max_len = max(max_len, MIN_WINDOW_S)
    gap = np.zeros(int(gap_s * sr), np.float32)
    clean = [SpeechSpan(max(0.0, s.start), min(audio.duration, s.end)) for s in merge_spans(spans)]
    clean = split_long([s for s in clean if s.end > s.start], max_len)
    pieces: list[Piece] = []
    parts: list[np.ndarray] = []
    cursor = 0  # packed length in samples; integer arithmetic keeps pieces and samples aligned
    for span in clean:
        samples = audio.samples[int(round(span.start * sr)) : int(round(span.end * sr))]
        if parts:
            parts.append(gap)
            cursor += len(gap)
        pieces.append(Piece(span.start, span.start + len(samples) / sr, cursor / sr))
        parts.append(samples)
        cursor += len(samples)
    packed = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return Packed(Audio(packed, sr), windows_at_pauses(pieces, max_len), tuple(pieces))


def windows_at_pauses(pieces: list[Piece], max_len: float) -> tuple[tuple[float, float], ...]:
    """Group consecutive pieces into windows of at most ``max_len`` packed seconds.

    A full window is cut before the piece that follows the longest original pause in its second
    half, not simply before the first piece that does not fit: Whisper stops at the last sentence
    it can finish, so a window cut mid-sentence leaves that sentence's start untranscribed.
    """
    windows: list[tuple[float, float]] = []
    first = 0
    while first < len(pieces):
        start = pieces[first].packed_start
        fit = first + 1  # pieces[first:fit] fit in the window (a piece is never longer than max_len)
        while fit < len(pieces) and _packed_end(pieces[fit]) - start <= max_len:
            fit += 1
        cut = fit
        if fit < len(pieces):  # the window is full: prefer the longest pause in its second half
            options = [k for k in range(first + 1, fit + 1) if _packed_end(pieces[k - 1]) - start >= MIN_FILL * max_len]
            cut = max(options, key=lambda k: (_pause_before(pieces, k), k), default=fit)
        windows.append((start, _packed_end(pieces[cut - 1])))
        first = cut
    return tuple(windows)


def _packed_end(p: Piece) -> float:
    return p.packed_start + (p.end - p.start)


def _pause_before(pieces: list[Piece], k: int) -> float:
    """Original silence between piece ``k - 1`` and piece ``k`` (the next window's start)."""
    return pieces[k].start - pieces[k - 1].end if k < len(pieces) else float("inf")


class TimeMap:
    """Maps a time in packed audio to the original audio's clock."""

    def __init__(self, pieces: tuple[Piece, ...]) -> None:
        self._pieces = pieces
        self._starts = [p.packed_start for p in pieces]

    def _index(self, t: float, is_end: bool) -> int:
        i = bisect.bisect_left(self._starts, t) if is_end else bisect.bisect_right(self._starts, t)
        return max(0, i - 1)

    def word(self, start: float, end: float) -> tuple[float, float]:
        """Original times of a word; one that straddles removed silence is moved into the piece it ends in.

        Whisper's word timing starts each word where the previous one ended, so a word after a cut
        is stretched back over it; mapped naively, it would swallow the removed silence and hide
        the pause before it.
        """
        i, j = self._index(start, False), self._index(end, True)
        if not self._pieces or i == j:
            return self.original(start), self.original(end, is_end=True)
        return self._pieces[j].start, self.original(end, is_end=True)

    def original(self, t: float, is_end: bool = False) -> float:
        """Original time of packed time ``t``; an end time exactly on a boundary stays in the piece before."""
        if not self._pieces:
            return t
        piece = self._pieces[self._index(t, is_end)]
        return min(piece.end, piece.start + (t - piece.packed_start)) if t >= piece.packed_start else piece.start
