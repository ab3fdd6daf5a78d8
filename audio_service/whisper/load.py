"""Loading a Whisper model into CTranslate2 (through faster-whisper), and the device it runs on."""

from __future__ import annotations

from pathlib import Path

from audio_service.whisper.types import LoadedModel, ModelSpec


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when CTranslate2 sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def load_whisper(
    spec: ModelSpec, path: Path | str, device: str, compute_type: str, threads: int, workers: int, download_root: Path
) -> LoadedModel:
    """faster-whisper's ``WhisperModel`` from ``path`` (a directory, or a hub id it downloads into
    ``download_root``); blocking. ``threads``: CPU threads per call; ``workers``: calls that may run at once."""
    from faster_whisper import WhisperModel

    whisper = WhisperModel(
        str(path),
        device=device,
        compute_type=compute_type,
        cpu_threads=threads,
        num_workers=workers,
        download_root=str(download_root),
    )
    return LoadedModel(spec, whisper, device, compute_type)
