"""Silero VAD over a whole file: the ONNX model that ships with faster-whisper (no torch)."""

from __future__ import annotations

from audio_service.schema import Audio, SpeechSpan
from audio_service.vad.params import BATCH_VAD, VadParams
from audio_service.whisper.silero import speech_timestamps


def silero_vad(audio: Audio, params: VadParams = BATCH_VAD) -> list[SpeechSpan]:
    """Speech spans found by Silero VAD (ONNX model bundled with faster-whisper)."""
    stamps = speech_timestamps(audio.samples, params, audio.sample_rate)
    sr = audio.sample_rate
    return [SpeechSpan(s["start"] / sr, s["end"] / sr) for s in stamps]
