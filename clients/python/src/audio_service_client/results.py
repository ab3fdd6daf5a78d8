"""Typed results: batch responses (``verbose_json``) and streaming messages, as pydantic models.

Models allow extra fields so that a newer server's additions reach the caller (``model.model_extra``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Word(_Model):
    """One word with its timing (``timestamp_granularities`` includes ``word``)."""

    word: str
    start: float
    end: float
    probability: float | None = None
    language: str | None = None
    speaker_id: str | None = None


class Segment(_Model):
    """One segment of a ``verbose_json`` response."""

    id: int
    start: float
    end: float
    text: str
    seek: int | None = None
    language: str | None = None
    tokens: list[int] = []
    temperature: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None
    speaker_id: str | None = None
    words: list[Word] | None = None


class Transcription(_Model):
    """A ``json`` (only ``text``) or ``verbose_json`` response of transcription, translation or alignment.

    ``headers`` holds the server's ``x-audio-service-*`` provenance headers (model, timings, ...).
    """

    text: str
    task: str | None = None
    language: str | None = None
    duration: float | None = None
    words: list[Word] | None = None
    segments: list[Segment] | None = None
    headers: dict[str, str] = {}

    @property
    def speakers(self) -> list[str]:
        """Speaker labels in order of first appearance (diarized responses)."""
        seen: dict[str, None] = {}
        for w in self.words or []:
            if w.speaker_id is not None:
                seen.setdefault(w.speaker_id)
        for s in self.segments or []:
            if s.speaker_id is not None:
                seen.setdefault(s.speaker_id)
        return list(seen)


ResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt"]


class StreamWord(_Model):
    """A word of a streamed segment; ``is_final`` words never change again."""

    word: str
    start: float | None = None
    end: float | None = None
    probability: float | None = None
    is_final: bool = False
    speaker_id: str | None = None


class StreamSegment(_Model):
    """A streamed segment: the server re-sends a segment (same ``id``) whenever it changes."""

    id: int
    text: str
    start: float | None = None
    end: float | None = None
    is_final: bool = False
    words: list[StreamWord] = []
    speaker_id: str | None = None

    @property
    def final(self) -> bool:
        """Final if the segment says so, or (for servers that mark only words) its last word is final."""
        return self.is_final or bool(self.words and self.words[-1].is_final)


@dataclass
class StreamTranscript:
    """The merged transcript of a stream: the state dict by segment id, as the protocol intends."""

    segments: dict[int, StreamSegment] = field(default_factory=dict)
    #: ids of segments whose text changed after they were sent final (should stay empty)
    changed_after_final: list[int] = field(default_factory=list)

    def apply(self, segments: list[StreamSegment]) -> None:
        """Merge a patch: each segment replaces the one with its id."""
        for seg in segments:
            old = self.segments.get(seg.id)
            if old is not None and old.final and old.text != seg.text:
                self.changed_after_final.append(seg.id)
            self.segments[seg.id] = seg

    def ordered(self) -> list[StreamSegment]:
        return [self.segments[k] for k in sorted(self.segments)]

    @property
    def text(self) -> str:
        """Final and partial text, in segment order."""
        return _join(s.text for s in self.ordered())

    @property
    def final_text(self) -> str:
        return _join(s.text for s in self.ordered() if s.final)

    @property
    def partial_text(self) -> str:
        return _join(s.text for s in self.ordered() if not s.final)

    @property
    def state(self) -> dict[int, str]:
        """``{id: text}``: what the reference's example clients keep."""
        return {k: self.segments[k].text for k in sorted(self.segments)}


def _join(parts: Any) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


@dataclass(frozen=True)
class StreamUpdate:
    """One server message of a stream, after it was merged into ``transcript``.

    ``kind`` is ``"segments"`` (``segments`` = the changed ones), ``"checkpoint"`` (``checkpoint_id``)
    or ``"trace"`` (``trace_id``); any other message has kind ``"other"``. ``raw`` is the message.
    """

    kind: Literal["segments", "checkpoint", "trace", "other"]
    transcript: StreamTranscript
    segments: tuple[StreamSegment, ...] = ()
    checkpoint_id: str | None = None
    trace_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """Put in a chunk iterator to ask for ``{"checkpoint_id": id}`` once everything before it is final."""

    checkpoint_id: str


@dataclass(frozen=True)
class TraceProbe:
    """Put in a chunk iterator to ask for a trace echo once everything before it is processed."""

    trace_id: str
    event_id: str | None = None
