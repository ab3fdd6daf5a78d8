"""The unit of work between a stream session and the engine: one decode of one segment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audio_service.streaming.decoder import DecodeRequest
from audio_service.streaming.segment import Segment

if TYPE_CHECKING:  # pragma: no cover
    from audio_service.streaming.session import StreamSession


@dataclass(frozen=True)
class DecodeJob:
    """One decode the engine runs for a session: a partial of the open segment or a final pass."""

    session: StreamSession
    segment: Segment
    final: bool
    request: DecodeRequest
    end: int  # absolute sample just past the decoded audio
    model: Any  # the shared model that decodes it (the draft model for partials, if any)
    early: bool = False  # a final pass of the open segment, taken before its endpoint (see _early_due)

    @property
    def kind(self) -> str:
        return "early" if self.early else "final" if self.final else "partial"
