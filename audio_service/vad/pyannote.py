"""``whisperx-pyannet``: voice activity from the pyannote segmentation model shipped in the whisperx wheel.

The same PyanNet checkpoint that finds local speakers for diarization (see
:func:`audio_service.models.segmentation.segmentation_model`) gives speech probability per frame; pyannote's
``VoiceActivityDetection`` pipeline binarizes it with whisperx's own thresholds. torch and pyannote are
imported on first use only.
"""

from __future__ import annotations

import threading
from typing import Any

from audio_service.models.segmentation import pyannote_input, segmentation_model
from audio_service.schema import Audio, SpeechSpan

# whisperx's defaults for this model (vad_onset / vad_offset), and pyannote's short-gap smoothing.
ONSET = 0.5
OFFSET = 0.363
MIN_DURATION_ON = 0.1
MIN_DURATION_OFF = 0.1


class PyannetVad:
    """The pyannote VAD; its pipeline is built on the first call and shared by every later one."""

    def __init__(self) -> None:
        # calls are serialized: the pipeline keeps instantiated parameters and a binarizer on itself
        self._lock = threading.Lock()
        self._pipeline: Any = None  # pyannote VoiceActivityDetection, built on the first call

    def _get_pipeline(self):
        if self._pipeline is None:
            from pyannote.audio.pipelines import VoiceActivityDetection

            pipeline = VoiceActivityDetection(segmentation=segmentation_model())
            pipeline.instantiate(
                {"onset": ONSET, "offset": OFFSET, "min_duration_on": MIN_DURATION_ON, "min_duration_off": MIN_DURATION_OFF}
            )
            self._pipeline = pipeline
        return self._pipeline

    def __call__(self, audio: Audio, params: object = None) -> list[SpeechSpan]:
        """Speech spans of ``audio`` according to the pyannote segmentation model (``params`` is ignored)."""
        import torch

        if audio.duration == 0:
            return []
        with self._lock, torch.inference_mode():
            speech = self._get_pipeline()(pyannote_input(audio))
        return [SpeechSpan(float(s.start), float(s.end)) for s in speech.get_timeline().support()]
