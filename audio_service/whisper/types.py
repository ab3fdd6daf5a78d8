"""The values that cross the Whisper backend's edge: loaded models, stream decode requests and results.

Nothing here imports faster-whisper or CTranslate2 at run time, so the streaming state machine and the
tests' fake backend use these types without loading either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from faster_whisper import WhisperModel

    from audio_service.whisper.rules import DecodeOptions

WINDOW_S = 30.0  # Whisper's input window: the longest audio one decode sees
MEL_FRAMES_PER_S = 100  # Whisper's feature frames per second of audio
FULL_FRAMES = int(WINDOW_S * MEL_FRAMES_PER_S)  # Whisper's 30 s window, in mel frames
BUCKET_FRAMES = 500  # in a call with several windows, lengths are rounded up to 5 s so they share one batch shape
SINGLE_BUCKET_FRAMES = 100  # a call with one window has nothing to share a shape with: 1 s steps


@dataclass(frozen=True)
class ModelSpec:
    id: str
    source: str  # "packaged:<name>", hub id, or local directory


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    whisper: WhisperModel
    device: str
    compute_type: str

    @property
    def multilingual(self) -> bool:
        return bool(self.whisper.model.is_multilingual)


@dataclass(frozen=True)
class DecodeRequest:
    """One stream window to decode. ``offset`` is the absolute time of ``samples[0]``."""

    samples: np.ndarray
    offset: float
    language: str | None
    # the stream's language so far, which Whisper's detection on this window replaces when confident
    # (the client set none): code-switched speech keeps each language
    language_switch: bool = False
    prompt_text: str = ""  # the client's prompt: always kept whole
    hotwords: str = ""  # the client's keyterms, before the prompt (faster-whisper's ``hotwords``)
    context_text: str = ""  # recent final text of the stream: trimmed to a token bucket (whisper/stream.py)
    prefix_tokens: tuple[int, ...] = ()
    # the forced prefix as text, for a model whose vocabulary ``prefix_tokens`` are not in (a stream's
    # draft model re-reading the words committed from the stream's model); used when ``prefix_tokens`` is empty
    prefix_text: str = ""
    beam_size: int = 1
    temperature: float = 0.0
    task: str = "transcribe"
    max_tokens: int = 0  # most text tokens of the window, forced prefix included (0: 10 + 7 per second)


@dataclass(frozen=True)
class DecodedWord:
    word: str
    start: float
    end: float
    probability: float
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class DecodeResult:
    text: str
    words: tuple[DecodedWord, ...]
    language: str
    no_speech_prob: float
    avg_logprob: float


@dataclass(frozen=True)
class WindowPolicy:
    """How long the encoder input is: the audio + ``pad_s``, rounded up to a bucket: 5 s when the call has
    several windows (batched generate needs one shape), else 1 s. The encoder's cost grows with its
    input, so a lone 2 s partial encodes 3 s instead of 5 s."""

    pad_s: float = 1.0

    def frames(self, audio_frames: int, windows_in_call: int = 1) -> int:
        need = audio_frames + int(self.pad_s * MEL_FRAMES_PER_S)
        bucket = SINGLE_BUCKET_FRAMES if windows_in_call == 1 else BUCKET_FRAMES
        return min(FULL_FRAMES, int(math.ceil(need / bucket)) * bucket)


class DecodeBatch(Protocol):
    """The signature of :func:`audio_service.whisper.stream.decode_batch`: what the streaming engine calls
    for each model call (tests give it a fake that needs no model)."""

    def __call__(
        self, model: LoadedModel, requests: list[DecodeRequest], window: WindowPolicy, options: DecodeOptions
    ) -> list[DecodeResult]: ...
