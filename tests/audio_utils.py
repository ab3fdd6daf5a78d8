"""Real test audio: the shared recordings, and speech synthesized with espeak-ng + sox."""

from __future__ import annotations

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


def normalize(text: str) -> str:
    text = re.sub(r"[^\w\s']", " ", text.lower())
    return " ".join(text.split())


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return jiwer.wer(normalize(reference), normalize(hypothesis))


def load_16k(path: Path) -> np.ndarray:
    from audio_service.audio.decode import decode_audio

    return decode_audio(str(path)).samples


def write_wav(path: Path, samples: np.ndarray, sr: int = 16000) -> Path:
    import wave

    from audio_service.audio.decode import float_to_pcm16

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
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
