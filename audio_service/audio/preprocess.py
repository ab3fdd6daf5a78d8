"""The reference API's ``preprocessing`` modes as real signal processing.

* ``dynamic``: automatic gain control for audio of variable loudness: a smoothed per-frame gain
  brings quiet and loud passages towards one target level (strong compression, fast attack).
* ``soft_dynamic``: the same idea with a gentle ratio and slow time constants, for speech-dense
  recordings (podcasts, voice-overs) that only need levelling.
* ``bass_dynamic``: a low-shelf boost (+6 dB below ~250 Hz) before ``soft_dynamic`` levelling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from audio_service.schema import Audio


@dataclass(frozen=True)
class CompressorOptions:
    target_dbfs: float = -20.0
    ratio: float = 4.0  # 1 = no compression; large = hard levelling towards the target
    max_gain_db: float = 24.0  # never amplify silence/noise by more than this
    frame_s: float = 0.02
    attack_s: float = 0.01
    release_s: float = 0.3
    noise_floor_dbfs: float = -60.0  # frames quieter than this keep the gain they had


DYNAMIC = CompressorOptions(ratio=4.0, attack_s=0.01, release_s=0.2)
SOFT_DYNAMIC = CompressorOptions(ratio=1.6, attack_s=0.05, release_s=1.0, max_gain_db=12.0)


def preprocess(audio: Audio, mode: str) -> Audio:
    """Return a new :class:`Audio` processed by ``mode`` (``none`` returns the input)."""
    if mode == "none":
        return audio
    if mode == "dynamic":
        return Audio(compress(audio.samples, audio.sample_rate, DYNAMIC), audio.sample_rate)
    if mode == "soft_dynamic":
        return Audio(compress(audio.samples, audio.sample_rate, SOFT_DYNAMIC), audio.sample_rate)
    if mode == "bass_dynamic":
        boosted = low_shelf(audio.samples, audio.sample_rate, gain_db=6.0, cutoff_hz=250.0)
        return Audio(compress(boosted, audio.sample_rate, SOFT_DYNAMIC), audio.sample_rate)
    raise ValueError(f"unknown preprocessing mode {mode!r}")


def compress(x: np.ndarray, sr: int, opt: CompressorOptions) -> np.ndarray:
    """Feed-forward RMS compressor/AGC with attack/release smoothing of the gain in dB."""
    if x.size == 0:
        return x
    hop = max(1, int(opt.frame_s * sr))
    n_frames = (len(x) + hop - 1) // hop
    padded = np.pad(x, (0, n_frames * hop - len(x)))
    rms = np.sqrt(np.mean(padded.reshape(n_frames, hop) ** 2, axis=1) + 1e-12)
    level_db = 20 * np.log10(rms)
    # Static curve: the distance to the target shrinks by ``ratio``.
    wanted = (opt.target_dbfs - level_db) * (1 - 1 / opt.ratio)
    wanted = np.minimum(wanted, opt.max_gain_db)
    gain_db = np.empty(n_frames)
    g = 0.0
    a_att = np.exp(-opt.frame_s / opt.attack_s)
    a_rel = np.exp(-opt.frame_s / opt.release_s)
    for i in range(n_frames):
        target = g if level_db[i] < opt.noise_floor_dbfs else wanted[i]
        coef = a_att if target < g else a_rel  # gain falls fast (attack), rises slowly (release)
        g = coef * g + (1 - coef) * target
        gain_db[i] = g
    centers = (np.arange(n_frames) + 0.5) * hop
    gain = 10 ** (np.interp(np.arange(len(x)), centers, gain_db) / 20)
    return np.clip(x * gain, -1.0, 1.0).astype(np.float32)


def low_shelf(x: np.ndarray, sr: int, gain_db: float, cutoff_hz: float) -> np.ndarray:
    """RBJ-cookbook low-shelf biquad (shelf slope 1)."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * cutoff_hz / sr
    cos_w0, sin_w0 = np.cos(w0), np.sin(w0)
    alpha = sin_w0 / 2 * np.sqrt(2)
    sq = 2 * np.sqrt(a) * alpha
    b = [a * ((a + 1) - (a - 1) * cos_w0 + sq), 2 * a * ((a - 1) - (a + 1) * cos_w0), a * ((a + 1) - (a - 1) * cos_w0 - sq)]
    den = [(a + 1) + (a - 1) * cos_w0 + sq, -2 * ((a - 1) + (a + 1) * cos_w0), (a + 1) + (a - 1) * cos_w0 - sq]
    return signal.lfilter(np.array(b) / den[0], np.array(den) / den[0], x).astype(np.float32)
