"""The pyannote segmentation model (PyanNet) shared by diarization and the ``whisperx-pyannet`` VAD.

The checkpoint is the one shipped inside the ``whisperx`` wheel; it finds up to three local
speakers per 5 s window. torch and pyannote are imported on first use only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audio_service.schema import Audio

_shared_lock = threading.Lock()
_shared: dict[str, Any] = {}


def whisperx_segmentation_path() -> Path:
    """The pyannote segmentation checkpoint of the ``whisperx`` wheel, extracted into the model cache and
    sha256-checked by ``audio-service prepare-models`` (whisperx itself is not installed)."""
    from audio_service.models.packaged import segmentation_checkpoint

    return segmentation_checkpoint()


def load_once(key: str, loader: Callable[[], Any]) -> Any:
    """Load a model once per process and share it (the loaders are slow; the models are read-only)."""
    with _shared_lock:
        if key not in _shared:
            _shared[key] = loader()
        return _shared[key]


def segmentation_model():
    """The shared pyannote segmentation model (PyanNet, 3 local speakers per 5 s window), in eval mode."""

    def load():
        import warnings

        from pyannote.audio import Model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = Model.from_pretrained(str(whisperx_segmentation_path()))
        assert model is not None  # None only for a checkpoint not found on the Hub; a local path raises instead
        model.eval()
        return model

    return load_once("segmentation", load)


def pyannote_input(audio: Audio) -> dict[str, Any]:
    """``audio`` in the in-memory form pyannote pipelines take (they then never decode files themselves)."""
    import torch

    return {"waveform": torch.from_numpy(audio.samples)[None], "sample_rate": audio.sample_rate, "uri": "request"}
