"""Voice activity detection: find speech spans, and group them into chunks for the decoder.

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
    min_silence_duration_ms: int = 500
    speech_pad_ms: int = 200


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


@dataclass(frozen=True)
class Chunk:
    """A window given to the decoder: at most ``max_len`` seconds, never bridging a long silence."""

    start: float
    end: float


def group_spans(spans: list[SpeechSpan], max_len: float = 30.0, max_gap: float = 2.0) -> list[Chunk]:
    """Merge consecutive speech spans into decoder chunks.

    A chunk grows while it stays within ``max_len`` and the silence before the next span is at
    most ``max_gap``; long silences are left out so that the decoder never sees them (Whisper
    invents text in long silence). A single span longer than ``max_len`` is cut into pieces.
    """
    chunks: list[Chunk] = []
    for span in spans:
        start, end = span.start, span.end
        while end - start > max_len:  # over-long speech: cut at max_len
            chunks.append(Chunk(start, start + max_len))
            start += max_len
        if chunks and start - chunks[-1].end <= max_gap and end - chunks[-1].start <= max_len:
            chunks[-1] = Chunk(chunks[-1].start, end)
        else:
            chunks.append(Chunk(start, end))
    return chunks


def fixed_windows(duration: float, max_len: float = 30.0) -> list[Chunk]:
    """Chunks that tile the whole audio (used when VAD is skipped)."""
    out, t = [], 0.0
    while t < duration:
        out.append(Chunk(t, min(duration, t + max_len)))
        t += max_len
    return out
