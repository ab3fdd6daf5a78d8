"""Decode files of any common container/codec to 16 kHz mono float32 with PyAV."""

from __future__ import annotations

import os
from typing import BinaryIO

import av
import numpy as np

from audio_service.errors import AudioDecodeError
from audio_service.schema import SAMPLE_RATE, Audio


def decode_audio(source: str | os.PathLike[str] | BinaryIO, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Decode the first audio stream of ``source``, downmixed to mono and resampled.

    Raises :class:`AudioDecodeError` when the input holds no decodable audio.
    """
    try:
        with av.open(source, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioDecodeError("The file contains no audio stream.", param="file")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks: list[np.ndarray] = []
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):  # flush the resampler's delay line
                chunks.append(out.to_ndarray().reshape(-1))
    except AudioDecodeError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise AudioDecodeError(f"Could not decode the audio file: {exc}", param="file") from exc
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioDecodeError("The file contains no audio samples.", param="file")
    return Audio(samples, sample_rate)


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit PCM bytes -> float32 samples in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """float32 samples -> little-endian PCM16 bytes (clipped)."""
    return (np.clip(samples, -1.0, 1.0 - 1 / 32768) * 32768).astype("<i2").tobytes()
