"""Voice activity detection: find the spans of audio that hold speech.

``silero`` runs the Silero VAD that ships with faster-whisper (ONNX, no torch). Other VAD models
register themselves in :data:`VAD_MODELS` (``whisperx-pyannet`` is added by the diarization stage).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from audio_service.schema import Audio, SpeechSpan


@dataclass(frozen=True)
class VadParams:
    threshold: float = 0.5
    min_speech_duration_ms: int = 250
    # faster-whisper's batched defaults: short silences split spans, generous padding keeps word edges
    min_silence_duration_ms: int = 160
    speech_pad_ms: int = 400


# Called as fn(audio) or fn(audio, params).
VadFn = Callable[..., list[SpeechSpan]]


def silero_vad(audio: Audio, params: VadParams = VadParams()) -> list[SpeechSpan]:
    """Speech spans found by Silero VAD (ONNX model bundled with faster-whisper)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(
        threshold=params.threshold,
        min_speech_duration_ms=params.min_speech_duration_ms,
        min_silence_duration_ms=params.min_silence_duration_ms,
        speech_pad_ms=params.speech_pad_ms,
    )
    stamps = get_speech_timestamps(audio.samples, opts, sampling_rate=audio.sample_rate)
    sr = audio.sample_rate
    return [SpeechSpan(s["start"] / sr, s["end"] / sr) for s in stamps]


# name -> loader returning the VAD function; loaders let heavy VADs import lazily.
def _load_pyannet() -> VadFn:
    from audio_service.pipeline import vad_pyannote  # imports torch/pyannote only when first asked for

    return vad_pyannote.load()


VAD_MODELS: dict[str, Callable[[], VadFn]] = {"silero": lambda: silero_vad, "whisperx-pyannet": _load_pyannet}


def get_vad(name: str) -> VadFn:
    """The VAD function registered as ``name`` (KeyError if none)."""
    return VAD_MODELS[name]()
