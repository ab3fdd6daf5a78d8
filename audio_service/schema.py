"""Typed contracts passed between pipeline stages.

Every value here is a frozen dataclass: stages return new values instead of mutating their input,
so a transcript can be shared between formatting, diarization and streaming without copies.
Times are in seconds from the start of the submitted audio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

SAMPLE_RATE = 16000

Task = Literal["transcribe", "translate"]


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono float32 samples in [-1, 1] at ``sample_rate`` (16 kHz throughout the service)."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate

    def slice(self, start: float, end: float) -> Audio:
        """The audio between two times (seconds), clamped to the signal."""
        a = max(0, int(round(start * self.sample_rate)))
        b = min(len(self.samples), int(round(end * self.sample_rate)))
        return Audio(self.samples[a:b], self.sample_rate)


@dataclass(frozen=True)
class SpeechSpan:
    """A stretch of audio a VAD judged to contain speech."""

    start: float
    end: float


# A voice activity detector: called as fn(audio) or fn(audio, params) (params: vad.params.VadParams).
VadFn = Callable[..., list[SpeechSpan]]


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float = 1.0
    speaker: str | None = None
    channel: int | None = None  # the file's channel the word was heard on (multichannel requests), 0-based


@dataclass(frozen=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    seek: int = 0
    tokens: tuple[int, ...] = ()
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0
    speaker: str | None = None
    # Other speakers heard while this segment's speaker talks (overlapped speech), when diarized.
    overlapping_speakers: tuple[str, ...] = ()
    language: str | None = None  # the language spoken in the segment, when it is not the transcript's
    channel: int | None = None  # the file's channel the segment was heard on (multichannel requests), 0-based


@dataclass(frozen=True)
class SpeakerTurn:
    """One speaker talking from ``start`` to ``end``; turns of different speakers may overlap.

    ``background`` marks speech heard under another, dominant speaker (overlap): it never takes a
    word, but the segments it overlaps list it in ``overlapping_speakers``.
    """

    start: float
    end: float
    speaker: str
    background: bool = False


@dataclass(frozen=True)
class Transcript:
    task: Task
    language: str
    duration: float
    segments: tuple[Segment, ...]
    language_probability: float = 1.0
    # What actually ran, for response headers and logs: {"model": ..., "vad": ..., "aligner": ..., "diarizer": ...}
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def words(self) -> tuple[Word, ...]:
        return tuple(w for s in self.segments for w in s.words)

    def with_segments(self, segments: tuple[Segment, ...]) -> Transcript:
        return replace(self, segments=segments)

    def with_provenance(self, **items: str) -> Transcript:
        return replace(self, provenance={**self.provenance, **items})
