"""The unit of work between a stream session and the engine: one decode of one segment.

A job refers back to the session it came from only through :class:`JobOwner`, the few calls the
engine makes on it, so this module (and the engine's view of a job) does not depend on the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from audio_service.streaming.endpointing import StreamSegment
from audio_service.whisper.types import DecodeRequest, DecodeResult

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.models.registry import LoadedModel

JobKind = Literal["partial", "final", "early"]


class JobOwner(Protocol):
    """What the engine calls on the session a job came from (:class:`audio_service.streaming.session.StreamSession`)."""

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
    model: LoadedModel  # the shared model that decodes it (the draft model for partials, if any)
    early: bool = False  # a final pass of the open segment, taken before its endpoint (see Endpointer.early_end)

    @property
    def kind(self) -> JobKind:
        return "early" if self.early else "final" if self.final else "partial"
