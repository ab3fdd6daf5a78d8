"""Silero VAD's parameters: one type for the batch VAD (whole files) and the streaming VAD (frame by frame).

Both run the Silero model that ships with faster-whisper (``audio_service.whisper.silero``); a stream
may override these per connection (``vad_kwargs``), the batch pipeline uses :data:`BATCH_VAD` or :data:`ENGINE_VAD`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VadParams:
    """Silero thresholds, the shortest speech, the endpoint silence and the padding around speech."""

    threshold: float = 0.5
    neg_threshold: float | None = None  # None: threshold - 0.15, as Silero's own default
    min_speech_duration_ms: int = 250
    min_silence_duration_ms: int = 500  # this much silence ends a speech span (a stream's endpoint)
    speech_pad_ms: int = 200

    @property
    def off_threshold(self) -> float:
        """The probability below which speech has stopped (hysteresis below ``threshold``)."""
        return self.neg_threshold if self.neg_threshold is not None else max(self.threshold - 0.15, 0.01)


# faster-whisper's batched defaults: short silences split spans, generous padding keeps word edges
BATCH_VAD = VadParams(min_silence_duration_ms=160, speech_pad_ms=400)
# faster-whisper's transcribe(vad_filter=True) defaults (its VadOptions): only pauses of 2 s and more
# are removed, so the sequential decoder reads the same packed speech as faster-whisper run directly
ENGINE_VAD = VadParams(min_speech_duration_ms=0, min_silence_duration_ms=2000, speech_pad_ms=400)
