"""``whisperx-pyannet``: voice activity from the pyannote segmentation model shipped in the whisperx wheel.

The same PyanNet checkpoint that finds local speakers for diarization (see
:func:`audio_service.models.segmentation.segmentation_model`) gives speech probability per frame; pyannote's
``VoiceActivityDetection`` pipeline binarizes it with whisperx's own thresholds. torch and pyannote are
imported on first use only.
"""

from __future__ import annotations

import threading

from audio_service.models.segmentation import pyannote_input, segmentation_model
from audio_service.schema import Audio, SpeechSpan, VadFn

# whisperx's defaults for this model (vad_onset / vad_offset), and pyannote's short-gap smoothing.
ONSET = 0.5
OFFSET = 0.363
MIN_DURATION_ON = 0.1
MIN_DURATION_OFF = 0.1

_lock = threading.Lock()
_pipeline = None


def _get_pipeline():
    global _pipeline
    if _pipeline is None:
        from pyannote.audio.pipelines import VoiceActivityDetection

        pipeline = VoiceActivityDetection(segmentation=segmentation_model())
        pipeline.instantiate(
            {"onset": ONSET, "offset": OFFSET, "min_duration_on": MIN_DURATION_ON, "min_duration_off": MIN_DURATION_OFF}
        )
        _pipeline = pipeline
    return _pipeline


def pyannet_vad(audio: Audio, params: object = None) -> list[SpeechSpan]:
    """Speech spans of ``audio`` according to the pyannote segmentation model (``params`` is ignored)."""
    import torch

    if audio.duration == 0:
        return []
    # One pipeline object shared by all requests; calls are serialized because it keeps instantiated
    # parameters and a binarizer on itself.
    with _lock, torch.inference_mode():
        speech = _get_pipeline()(pyannote_input(audio))
    return [SpeechSpan(float(s.start), float(s.end)) for s in speech.get_timeline().support()]


def load() -> VadFn:
    """Loader for :data:`audio_service.pipeline.vad.VAD_MODELS` (model loads on first call)."""
    return pyannet_vad
