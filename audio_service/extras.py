"""Optional features and the pip extra that installs each.

``pip install audio-service`` is the transcription core (batch and streaming, Silero VAD, Whisper
word timing): no torch. Diarization, the ``whisperx-pyannet`` VAD and the ``mms_fa`` aligner need
torch and friends, installed by an extra; their modules import those packages only when a request
needs them, after :func:`require` has checked that they are there.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass

from audio_service.errors import FeatureNotInstalledError


@dataclass(frozen=True)
class Feature:
    extra: str  # the pip extra that installs it
    modules: tuple[str, ...]  # what it imports (found, not imported, to tell whether it is installed)
    label: str  # how error messages name it


FEATURES: dict[str, Feature] = {
    "diarization": Feature("diarization", ("torch", "pyannote.audio", "resemblyzer"), "Speaker diarization"),
    "pyannote_vad": Feature("diarization", ("torch", "pyannote.audio"), "The whisperx-pyannet VAD"),
    "mms_alignment": Feature("mms", ("torch", "torchaudio"), "The mms_fa aligner"),
    "ray": Feature("ray", ("ray",), "Ray Serve scale-out"),
}


@functools.cache
def installed(name: str) -> bool:
    """Whether the packages of feature ``name`` are importable (nothing is imported)."""
    return all(_findable(module) for module in FEATURES[name].modules)


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing or broken
        return False


def installed_features() -> dict[str, bool]:
    """Every optional feature and whether it is installed (``/health`` shows this)."""
    return {name: installed(name) for name in FEATURES}


def install_hint(name: str) -> str:
    return f"pip install 'audio-service[{FEATURES[name].extra}]'"


def require(name: str, param: str | None = None) -> None:
    """Raise :class:`FeatureNotInstalledError` (400, naming the extra) unless feature ``name`` is installed."""
    if not installed(name):
        feature = FEATURES[name]
        raise FeatureNotInstalledError(
            f"{feature.label} is not installed on this server: it needs the {feature.extra!r} extra ({install_hint(name)}).",
            param=param,
        )
