"""Decode files of any common container/codec to 16 kHz mono float32 with PyAV: the channels mixed
down, or one channel on its own (a multichannel request)."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import BinaryIO

import av
import numpy as np

from audio_service.errors import AudioDecodeError
from audio_service.schema import SAMPLE_RATE, Audio

MAX_CHANNELS = 8  # a multichannel request decodes the file once per channel: bounded


def decode_audio(source: str | os.PathLike[str] | BinaryIO, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Decode the first audio stream of ``source`` whole, downmixed to mono and resampled.

    Raises :class:`AudioDecodeError` when the input holds no decodable audio.
    """
    blocks = [b.samples for b in iter_audio_blocks(source, float("inf"), sample_rate)]
    return Audio(np.concatenate(blocks) if len(blocks) > 1 else blocks[0], sample_rate)


def probe_audio(source: str | os.PathLike[str] | BinaryIO) -> int:
    """Decode the first second of ``source`` and return its number of channels: raises
    :class:`AudioDecodeError` for an empty, non-audio or undecodable file, so a request can be refused
    before it waits for a worker. A file object is rewound afterwards."""
    channels: list[int] = []
    # channel 0 alone: a file of many channels that FFmpeg cannot mix down still tells its channel count
    blocks = iter_audio_blocks(source, 1.0, channel=0, channels_out=channels)
    try:
        next(blocks)
    finally:
        blocks.close()
        if hasattr(source, "seek"):
            source.seek(0)
    return channels[0]


def audio_duration(path: str | os.PathLike[str]) -> float | None:
    """The file's duration in seconds as its container declares it (None when it does not)."""
    try:
        with av.open(os.fspath(path)) as container:
            return container.duration / av.time_base if container.duration else None
    except (av.FFmpegError, OSError):
        return None


def pcm16_to_float(data: bytes) -> np.ndarray:
    """Little-endian signed 16-bit PCM bytes -> float32 samples in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def iter_audio_blocks(
    source: str | os.PathLike[str] | BinaryIO,
    block_s: float,
    sample_rate: int = SAMPLE_RATE,
    channel: int | None = None,
    channels_out: list[int] | None = None,
) -> Generator[Audio, None, None]:
    """Decode ``source`` incrementally, yielding consecutive blocks of about ``block_s`` seconds.

    The channels are mixed down to mono, or with ``channel`` (0-based) only that channel is kept, with
    nothing of the others mixed in. ``channels_out``, if given, gets the stream's channel count appended
    when the file is opened. Memory stays bounded by one block however long the file is. Raises
    :class:`AudioDecodeError` like :func:`decode_audio` (an empty or undecodable file fails before the
    first block).
    """
    block_len = max(1, int(block_s * sample_rate)) if block_s != float("inf") else 1 << 62
    pending: list[np.ndarray] = []
    pending_len = 0
    produced = False
    try:
        with av.open(source, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioDecodeError("The file contains no audio stream.", param="file")
            stream = container.streams.audio[0]
            channels = max(1, stream.codec_context.channels or 1)
            if channels_out is not None:
                channels_out.append(channels)
            if channel is not None and not 0 <= channel < channels:
                raise AudioDecodeError(f"The file has {channels} channel(s), no channel {channel}.", param="file")
            one = channel if channels > 1 else None  # the channel to take out of each frame
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            frames = container.decode(stream)
            for frame in _with_flush(frames):
                # one channel is taken out of the decoded frame before resampling, so nothing of the others
                # is mixed in; FFmpeg's resampler itself crashes on layouts it has no name for (9 channels)
                for out in resampler.resample(_one_channel(frame, one, channels) if one is not None and frame else frame):
                    pending.append(out.to_ndarray().reshape(-1))
                    pending_len += pending[-1].size
                while pending_len >= block_len:
                    joined = np.concatenate(pending)
                    yield Audio(joined[:block_len].astype(np.float32, copy=False), sample_rate)
                    produced = True
                    pending, pending_len = [joined[block_len:]], joined.size - block_len
    except AudioDecodeError:
        raise
    except (av.error.FFmpegError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise AudioDecodeError(f"Could not decode the audio file: {exc}", param="file") from exc
    if pending_len:
        yield Audio(np.concatenate(pending).astype(np.float32, copy=False), sample_rate)
    elif not produced:
        raise AudioDecodeError("The file contains no audio samples.", param="file")


_SCALE = {"u8": 128.0, "s16": 2.0**15, "s32": 2.0**31, "s64": 2.0**63, "flt": 1.0, "dbl": 1.0}  # every PyAV sample format


def _one_channel(frame: av.AudioFrame, channel: int, channels: int) -> av.AudioFrame:
    """Channel ``channel`` of a decoded frame of ``channels`` channels, as a mono float frame."""
    fmt = frame.format.name.removesuffix("p")
    if fmt not in _SCALE:
        raise AudioDecodeError(f"Unsupported sample format {frame.format.name!r} for multichannel.", param="file")
    data = frame.to_ndarray()
    row = data[channel] if frame.format.is_planar else data.reshape(-1)[channel::channels]
    samples = row.astype(np.float32)
    if fmt == "u8":
        samples -= 128.0
    mono = av.AudioFrame.from_ndarray((samples / _SCALE[fmt])[None, :], format="flt", layout="mono")
    mono.sample_rate = frame.sample_rate
    mono.pts, mono.time_base = frame.pts, frame.time_base
    return mono


def _with_flush(frames: Iterator[av.AudioFrame]) -> Iterator[av.AudioFrame | None]:
    """The decoded frames, then ``None`` so the resampler flushes its delay line."""
    yield from frames
    yield None
