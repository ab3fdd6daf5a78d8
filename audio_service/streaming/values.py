"""The streaming package's immutable values: what a stream is configured with, what a client sends
between audio frames, and what a client is shown of a segment.

Every type here is a frozen dataclass with no behaviour beyond reading its fields, so any module of
the package may import this one and none of them can change what another holds. The mutable state of
a stream lives with the part that owns it (see :mod:`audio_service.streaming.session`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from audio_service.vad.params import VadParams

# A JSON value as a client sent it (checkpoint and trace ids are echoed back exactly)
JsonValue = Union[str, int, float, bool, None, list["JsonValue"], dict[str, "JsonValue"]]


@dataclass(frozen=True)
class SessionConfig:
    """Engine-wide knobs, taken from :class:`Settings`."""

    partial_interval_s: float = 0.5
    max_segment_s: float = 15.0
    max_backlog_s: float = 60.0
    final_beam_size: int = 5
    context_chars: int = 200
    short_segment_s: float = 2.0
    short_endpoint_s: float = 1.5
    commit_words: bool = False  # words of the open segment become final once stable (see commits)
    commit_interval_s: float = 0.4  # partial_interval_s of a segment that commits words
    commit_languages: tuple[str, ...] = ("en",)  # ... in streams of these languages ("*": all)


@dataclass(frozen=True)
class StreamOptions:
    """One stream's validated options (its query parameters, see :func:`~.protocol.parse_options`)."""

    model: str | None = None
    language: str | None = None
    prompt: str | None = None
    hotwords: str | None = None  # the client's keyterms or hotwords (whisper.decoding.keyterms_text)
    temperature: float = 0.0
    response_format: str = "verbose_json"
    word_timestamps: bool = True
    skip_vad: bool = False
    vad: VadParams = VadParams()
    text_timeout_s: float = 5.0
    diarize: bool = False


# --- client messages: markers, answered once the audio before them is done ------------------------


@dataclass(frozen=True)
class Checkpoint:
    """``turn_end``: the audio before it is a whole utterance (a realtime commit): the segment it cuts
    is decoded without the audio after it, which may be the next utterance or never come."""

    checkpoint_id: JsonValue
    turn_end: bool = False

    @property
    def is_final(self) -> bool:
        return self.checkpoint_id == "final"


@dataclass(frozen=True)
class Trace:
    trace_id: JsonValue
    event_id: JsonValue = None


# --- what a client sees -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WordView:
    """One word of a segment; ``is_final``: committed, it never changes (every word of a final segment is)."""

    word: str
    start: float
    end: float
    probability: float
    is_final: bool = False


@dataclass(frozen=True)
class SegmentView:
    """What a client sees of one segment at one moment."""

    id: int
    text: str
    start: float
    end: float
    is_final: bool
    words: tuple[WordView, ...] = ()
    speaker_id: str | None = None
    language: str | None = None  # the language Whisper decoded the segment in
