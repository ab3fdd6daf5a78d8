"""The Silero VAD model that ships with faster-whisper (ONNX, run by onnxruntime: no torch).

Silero is not Whisper, but its loader and its whole-file scorer are faster-whisper's (``faster_whisper.vad``),
so they are reached here, beside the rest of faster-whisper; :mod:`audio_service.vad` builds the VADs on them.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class SileroParams(Protocol):
    """Silero's parameters (``audio_service.vad.params.VadParams`` has them)."""

    @property
    def threshold(self) -> float: ...
    @property
    def neg_threshold(self) -> float | None: ...
    @property
    def min_speech_duration_ms(self) -> int: ...
    @property
    def min_silence_duration_ms(self) -> int: ...
    @property
    def speech_pad_ms(self) -> int: ...


def silero_options(params: SileroParams) -> Any:
    """``params`` as faster-whisper's ``VadOptions`` (its whole-file Silero VAD)."""
    from faster_whisper.vad import VadOptions

    return VadOptions(
        threshold=params.threshold,
        neg_threshold=params.neg_threshold,
        min_speech_duration_ms=params.min_speech_duration_ms,
        min_silence_duration_ms=params.min_silence_duration_ms,
        speech_pad_ms=params.speech_pad_ms,
    )


def speech_timestamps(samples: np.ndarray, params: SileroParams, sample_rate: int) -> list[dict]:
    """Silero's speech spans over a whole recording: ``{"start", "end"}`` in samples."""
    from faster_whisper.vad import get_speech_timestamps

    return get_speech_timestamps(samples, silero_options(params), sampling_rate=sample_rate)


def silero_session() -> Any:
    """The shared, stateless ONNX session of the Silero model (``InferenceSession.run`` is thread-safe)."""
    from faster_whisper.vad import get_vad_model

    return get_vad_model().session
