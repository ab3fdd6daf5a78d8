"""The state one stream's parts share: the engine-wide knobs, a speech segment, the audio buffer.

A :class:`StreamSegment` is session-internal and mutable; each part of the session owns some of its
fields (endpointing: the span and cut flags; stabilisation: the hypotheses; the transcript: id
and view). Positions are absolute sample numbers at :data:`SAMPLE_RATE` from the stream's start.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from audio_service.streaming.patches import SegmentView

if TYPE_CHECKING:
    from audio_service.whisper.types import DecodeResult


@dataclass(frozen=True)
class SessionConfig:
    """Engine-wide knobs, taken from :class:`Settings`."""

    partial_interval_s: float = 0.5
    adaptive_partials: bool = True  # see Settings.stream_partial_policy
    max_segment_s: float = 15.0
    max_backlog_s: float = 60.0
    final_beam_size: int = 5
    context_chars: int = 200
    short_segment_s: float = 2.0
    short_endpoint_s: float = 1.5
    early_final: bool = True  # see Settings.stream_early_final


@dataclass
class StreamSegment:
    """Session-internal, mutable: one speech segment from open to final."""

    start: int  # absolute sample
    end: int | None = None  # None while open
    # decoded audio may reach across a cut (see streaming/cuts.py); words outside [start, end) are dropped
    audio_start: int | None = None  # None: from ``start``
    audio_end: int | None = None  # None: to ``end``
    clip_start: bool = False  # drop words whose midpoint is before ``start``
    clip_end: bool = False  # drop words whose midpoint is at or after ``end``
    closed_at: float = 0.0  # monotonic time the segment was closed
    lead_words: tuple[str, ...] = ()  # the final words before the cut this segment continues from
    id: int | None = None
    decoded_end: int = 0  # audio covered by the newest hypothesis
    submitted_at: int = 0  # received position when the last partial was submitted
    text_changed_at: int = 0
    first_speech: int = 0
    last_speech: int = 0
    view: SegmentView | None = None
    prev_words: tuple[str, ...] = ()
    locked: tuple[int, ...] = ()  # decoder prefix: tokens of words two hypotheses agreed on
    heard_tokens: int = 0  # text tokens of the newest partial hypothesis (its budget for the next one)
    locked_by: object = None  # the (shared) model whose vocabulary ``locked`` is in
    probs: list[tuple[int, float]] = field(default_factory=list)
    # an early final pass (see Endpointer.early_end): the end it decoded to, and its result once done
    early_end: int | None = None
    early_result: DecodeResult | None = None

    @property
    def decode_from(self) -> int:
        """First sample the decoder is given (before ``start`` when the segment continues across a cut)."""
        return self.start if self.audio_start is None else self.audio_start


class AudioBuffer:
    """Samples from ``start`` to ``end`` (absolute), kept as a list of chunks to avoid re-copying."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[int, np.ndarray]] = deque()
        self.start = 0
        self.end = 0

    def append(self, samples: np.ndarray) -> None:
        if samples.size:
            self._chunks.append((self.end, samples))
            self.end += len(samples)

    def slice(self, a: int, b: int) -> np.ndarray:
        """Samples ``a`` to ``b`` (absolute); only what is still held."""
        parts = []
        for s, arr in self._chunks:
            e = s + len(arr)
            if e <= a or s >= b:
                continue
            parts.append(arr[max(0, a - s) : min(len(arr), b - s)])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    def drop_before(self, pos: int) -> None:
        """Free whole chunks that end at or before ``pos``."""
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= pos:
            self._chunks.popleft()
        self.start = self._chunks[0][0] if self._chunks else self.end

    def clear(self) -> None:
        self._chunks.clear()
        self.start = self.end
