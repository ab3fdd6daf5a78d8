"""Voice activity detection: the spans of audio that hold speech, for files and for streams.

- :mod:`.params`: :class:`VadParams` (Silero's thresholds, one type for files and streams) and the
  batch presets;
- :mod:`.silero`: Silero over a whole file (ONNX, shipped with faster-whisper; no torch);
- :mod:`.streaming`: Silero run incrementally on one stream's frames;
- :mod:`.pyannote`: ``whisperx-pyannet``, the pyannote segmentation model as a VAD (diarization extra);
- :class:`VadRegistry`: the VADs a request may name, each loaded once per registry (one per app).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from audio_service.extras import require
from audio_service.schema import VadFn
from audio_service.vad.silero import silero_vad


def _load_pyannet() -> VadFn:
    require("pyannote_vad", param="vad_model")  # the diarization extra
    from audio_service.vad.pyannote import PyannetVad  # imports torch/pyannote only when first asked for

    return PyannetVad()


# name -> loader of the VAD function; loaders let heavy VADs import lazily
_LOADERS: dict[str, Callable[[], VadFn]] = {"silero": lambda: silero_vad, "whisperx-pyannet": _load_pyannet}


class VadRegistry:
    """The VADs a request may name (``vad_model``). Each is built once, on first use, and shared by
    every request; a VAD's model loads on its first call."""

    names: tuple[str, ...] = tuple(sorted(_LOADERS))

    def __init__(self) -> None:
        self._loaded: dict[str, VadFn] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> VadFn:
        """The VAD registered as ``name`` (KeyError if none; FeatureNotInstalledError if its extra is missing)."""
        loader = _LOADERS[name]
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = loader()
            return self._loaded[name]


__all__ = ["VadRegistry", "silero_vad"]
