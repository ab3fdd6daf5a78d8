"""Voice activity detection: find the spans of audio that hold speech.

``silero`` runs the Silero VAD that ships with faster-whisper (ONNX, no torch). Other VAD models
register themselves in :data:`VAD_MODELS` (``whisperx-pyannet`` is added by the diarization stage).
"""

from __future__ import annotations

from collections.abc import Callable

from audio_service.extras import require
from audio_service.models.silero import VadParams
from audio_service.schema import Audio, SpeechSpan, VadFn

# faster-whisper's batched defaults: short silences split spans, generous padding keeps word edges
BATCH_VAD = VadParams(min_silence_duration_ms=160, speech_pad_ms=400)
# faster-whisper's transcribe(vad_filter=True) defaults (its VadOptions): only pauses of 2 s and more
# are removed, so the sequential decoder reads the same packed speech as faster-whisper run directly
ENGINE_VAD = VadParams(min_speech_duration_ms=0, min_silence_duration_ms=2000, speech_pad_ms=400)


def silero_vad(audio: Audio, params: VadParams = BATCH_VAD) -> list[SpeechSpan]:
    """Speech spans found by Silero VAD (ONNX model bundled with faster-whisper)."""
    from faster_whisper.vad import get_speech_timestamps

    stamps = get_speech_timestamps(audio.samples, params.faster_whisper_options(), sampling_rate=audio.sample_rate)
    sr = audio.sample_rate
    return [SpeechSpan(s["start"] / sr, s["end"] / sr) for s in stamps]


# name -> loader returning the VAD function; loaders let heavy VADs import lazily.
def _load_pyannet() -> VadFn:
    require("pyannote_vad", param="vad_model")  # the diarization extra
    from audio_service.pipeline import vad_pyannote  # imports torch/pyannote only when first asked for

    return vad_pyannote.load()


VAD_MODELS: dict[str, Callable[[], VadFn]] = {"silero": lambda: silero_vad, "whisperx-pyannet": _load_pyannet}


def get_vad(name: str) -> VadFn:
    """The VAD function registered as ``name`` (KeyError if none; FeatureNotInstalledError if its extra is
    missing). Cheap: models load on the function's first call."""
    return VAD_MODELS[name]()
