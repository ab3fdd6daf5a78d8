"""PCM16 audio at another sample rate -> float32 samples at the service's rate, chunk by chunk.

A stream arrives in small chunks: resampling each alone would click at every boundary, so one
libswresample instance (PyAV) keeps its filter state across the chunks of a stream. Its windowed-sinc
filter is band-limited: a 16k -> 24k -> 16k round trip of real speech changes it only near 8 kHz, the
filters' transition band (``bench/realtime.py`` records the SNR).

The output is PCM16 again, as every client of the streaming protocol sends: the samples Whisper hears
from a 24 kHz session are exactly samples a 16 kHz client could send, so a realtime session and the
streaming protocol can be given the very same audio (Whisper's decode flips on differences far below
hearing, such as float rounding against PCM16).
"""

from __future__ import annotations

import av
import numpy as np

from audio_service.audio.decode import pcm16_to_float
from audio_service.schema import SAMPLE_RATE


class PcmResampler:
    """Mono PCM16LE at ``rate`` -> float32 at :data:`SAMPLE_RATE`; at that rate already, only converted.

    The filter holds back a few milliseconds of each chunk until the next one arrives.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._resampler = None if rate == SAMPLE_RATE else _resampler()

    def push(self, data: bytes) -> np.ndarray:
        """The samples of ``data`` (whole PCM16 samples) that the filter can give now."""
        if self._resampler is None:
            return pcm16_to_float(data)
        pcm = np.frombuffer(data, dtype="<i2").reshape(1, -1)
        if not pcm.size:
            return np.zeros(0, np.float32)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = self.rate
        return _samples(self._resampler.resample(frame))

    def flush(self) -> np.ndarray:
        """The samples the filter still holds (the end of an utterance); the next chunk starts a new stream."""
        if self._resampler is None:
            return np.zeros(0, np.float32)
        out = _samples(self._resampler.resample(None))
        self._resampler = _resampler()
        return out


def _resampler() -> av.AudioResampler:
    return av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)


def _samples(frames: list[av.AudioFrame]) -> np.ndarray:
    out = [f.to_ndarray().reshape(-1) for f in frames]
    return pcm16_to_float(np.concatenate(out).astype("<i2").tobytes()) if out else np.zeros(0, np.float32)
