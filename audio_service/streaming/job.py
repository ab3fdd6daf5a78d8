"""The unit of work between a stream session and the engine: one decode of one segment."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from audio_service.streaming.segment import StreamSegment
from audio_service.whisper.types import DecodeRequest, DecodeResult


class JobOwner(Protocol):
    """What the engine calls on the session a job came from (:class:`audio_service.streaming.session.StreamSession`)."""

    notify: Callable[[], None]

    @property
    def has_tracker(self) -> bool: ...

    def speaker_for(self, job: DecodeJob, result: DecodeResult) -> list[str] | None: ...

    def complete(self, job: DecodeJob, result: DecodeResult, speakers: list[str] | None = None) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


@dataclass(frozen=True)
class DecodeJob:
    """One decode the engine runs for a session: a partial of the open segment or a final pass."""

    session: JobOwner
    segment: StreamSegment
    final: bool
    request: DecodeRequest
    end: int  # absolute sample just past the decoded audio
    model: Any  # the shared model that decodes it (the draft model for partials, if any)
    early: bool = False  # a final pass of the open segment, taken before its endpoint (see _early_due)

    @property
    def kind(self) -> str:
        return "early" if self.early else "final" if self.final else "partial"
