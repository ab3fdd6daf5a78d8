"""Audio for streaming: decode anything to 16 kHz mono PCM16 (PyAV), and cut it into frames."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

SAMPLE_RATE = 16000


def decode_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an audio (or video) file to 16 kHz mono int16 samples with PyAV (FFmpeg)."""
    import av

    out: list[np.ndarray] = []
    with av.open(os.fspath(path)) as container:
        stream = next((s for s in container.streams if s.type == "audio"), None)
        if stream is None:
            raise ValueError(f"{path}: no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(stream):
            for res in resampler.resample(frame):
                out.append(res.to_ndarray().reshape(-1))
        for res in resampler.resample(None):  # flush the resampler's tail
            out.append(res.to_ndarray().reshape(-1))
    return np.concatenate(out).astype(np.int16) if out else np.zeros(0, np.int16)


def probe_duration(path: str | os.PathLike[str]) -> float | None:
    """The file's duration in seconds from its container (no decoding); None when unknown."""
    import av

    try:
        with av.open(os.fspath(path)) as container:
            return container.duration / 1_000_000 if container.duration else None
    except (OSError, ValueError, av.FFmpegError):
        return None


def to_pcm16(samples: Any, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Samples (float in [-1, 1] or int16; mono, or (n, channels)) -> 16 kHz mono int16."""
    a = np.asarray(samples)
    if a.ndim == 2:  # (frames, channels), as sounddevice and soundfile give it
        a = a.mean(axis=1) if a.dtype.kind == "f" else a.astype(np.float32).mean(axis=1).astype(a.dtype)
    if a.dtype.kind == "f":
        a = (np.clip(a, -1.0, 1.0) * 32767.0).astype(np.int16)
    elif a.dtype != np.int16:
        a = a.astype(np.int16)
    if sample_rate != SAMPLE_RATE:
        a = _resample(a, sample_rate)
    return a


def _resample(a: np.ndarray, rate: int) -> np.ndarray:
    """Resample int16 mono with FFmpeg's resampler (better than linear interpolation)."""
    import av

    frame = av.AudioFrame.from_ndarray(a.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.int16) if parts else np.zeros(0, np.int16)


def frames(pcm: np.ndarray, frame_ms: int = 100) -> Iterator[bytes]:
    """Cut int16 samples into PCM16LE frames of ``frame_ms`` (the last one may be shorter)."""
    n = max(1, SAMPLE_RATE * frame_ms // 1000)
    data = pcm.astype("<i2", copy=False)
    for i in range(0, len(data), n):
        yield data[i : i + n].tobytes()


def chunk_to_bytes(chunk: Any) -> bytes:
    """A chunk from a user's iterator: PCM16LE bytes as they are, arrays converted (16 kHz assumed)."""
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        b = bytes(chunk)
        if len(b) % 2:
            raise ValueError("PCM16 chunks must have an even number of bytes")
        return b
    return to_pcm16(chunk).astype("<i2", copy=False).tobytes()
