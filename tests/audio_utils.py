"""Real test audio: the shared recordings, and speech synthesized with espeak-ng + sox."""

from __future__ import annotations

import csv
import functools
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
JFK = DATA / "jfk.flac"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
TWO_SPEAKERS = DATA / "two_speakers.wav"
TWO_SPEAKERS_RTTM = DATA / "two_speakers.rttm"
REALSPEECH = DATA / "realspeech"
ENGLISH_READINGS = (
    "en_librivox_sense_and_sensibility_ch01.wav",
    "en_librispeech_1089-134686-0000.wav",
    "en_librispeech_1272-128104-0000.wav",
    "en_librispeech_1995-1837-0001.wav",
    "en_fleurs_001.wav",
)


def normalize(text: str) -> str:
    text = re.sub(r"[^\w\s']", " ", text.lower())
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return jiwer.wer(normalize(reference), normalize(hypothesis))


def load_16k(path: Path) -> np.ndarray:
    from audio_service.audio.decode import decode_audio

    return decode_audio(str(path)).samples


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """float32 samples -> little-endian PCM16 bytes (clipped): what a streaming client sends."""
    return (np.clip(samples, -1.0, 1.0 - 1 / 32768) * 32768).astype("<i2").tobytes()


def write_wav(path: Path, samples: np.ndarray, sr: int = 16000) -> Path:
    """A PCM16 wav of ``samples``: mono, or one column per channel (shape (n, channels))."""
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(float_to_pcm16(samples))
    return path


def espeak(text: str, path: Path, voice: str = "en", speed: int = 150) -> Path:
    """Speak ``text`` with espeak-ng, converted by sox to 16 kHz mono wav."""
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        raise RuntimeError("espeak-ng and sox are required (installed by scripts/install.sh)")
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True)
    raw.unlink()
    return path


@functools.cache
def realspeech_manifest() -> dict[str, dict[str, str]]:
    """The rows of ``realspeech/manifest.tsv`` (file, seconds, language, ..., reference_text) by file name."""
    with open(REALSPEECH / "manifest.tsv", newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def english_reading(pause_s: float, copies: int = 1, recordings: int | None = None) -> tuple[np.ndarray, str]:
    """jfk and the English ``realspeech`` recordings (73 s of real speech, no sentence said twice), each
    followed by ``pause_s`` of silence, the whole ``copies`` times over; and its reference text.
    ``recordings``: only the first this many of those (jfk, then ENGLISH_READINGS in order).

    Long test files are built from this rather than from one sentence repeated: a Whisper window that
    holds the same sentence several times looks like a repetition loop (compression ratio above 2.4),
    and the temperature fallback then samples at random, so two runs of one file would differ. A copy
    is longer than a window, so no window holds a sentence twice.
    """
    pause = np.zeros(int(pause_s * 16000), np.float32)
    rows = realspeech_manifest()
    names = ENGLISH_READINGS if recordings is None else ENGLISH_READINGS[: recordings - 1]
    clips = [(load_16k(JFK), JFK_TEXT)] + [(load_16k(REALSPEECH / f), rows[f]["reference_text"]) for f in names]
    once = np.concatenate([part for samples, _ in clips for part in (samples, pause)])
    return np.tile(once, copies), " ".join([" ".join(text for _, text in clips)] * copies)
