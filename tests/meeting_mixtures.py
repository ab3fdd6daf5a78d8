"""Far-field-like meeting mixtures of espeak-ng voices with known turns (calibration and tests).

Each voice is an espeak-ng variant with its own pitch and speed; turns alternate with short gaps, a
few short backchannels overlap the current speaker, and sox adds room reverb before low noise is
mixed in - closer to a meeting microphone than clean synthetic speech. Deterministic (seeded noise).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from tests.audio_utils import load_16k, write_wav

SR = 16000
LINES = [
    "I think we should look at the remote control design again before the next meeting.",
    "The buttons are too small, and most people will not find the volume control quickly.",
    "Our budget is limited, so we need to choose the components very carefully this time.",
    "Maybe we can use a rubber case, it feels nice and it does not break when it falls.",
    "I spoke with the marketing team yesterday and they want something more colourful.",
    "That sounds reasonable, but we have to check what the production costs would be.",
    "Let us write down the three options and decide at the end of the afternoon.",
    "I agree with that, and I can prepare a short presentation of the prototypes.",
    "Does anybody know when the evaluation results from the user study will arrive?",
    "They should come next week, I will send them around as soon as I get them.",
]
BACKCHANNELS = ["yeah", "okay", "right", "mm hmm"]

# (name, espeak-ng voice, pitch 0-99, words per minute)
VOICES = {
    "m_us": ("en-us+m3", 40, 165),
    "f_gb": ("en-gb+f2", 60, 150),
    "m_sc": ("en-gb-scotland+m1", 25, 140),
    "f_us": ("en-us+f4", 75, 175),
}


def _speak(text: str, voice: tuple[str, int, int], path: Path) -> np.ndarray:
    name, pitch, speed = voice
    subprocess.run(["espeak-ng", "-v", name, "-p", str(pitch), "-s", str(speed), "-w", str(path), text], check=True)
    samples = load_16k(path)
    loud = np.nonzero(np.abs(samples) > 0.01)[0]
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def build_meeting(directory: Path, speakers: list[str], name: str = "meeting", seed: int = 0, overlap: bool = True):
    """A far-field-like file where ``speakers`` (keys of ``VOICES``) take turns over ``LINES``;
    returns (wav path, reference Annotation with overlaps as they were placed)."""
    from tests.diarization_utils import annotation

    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    placed: list[tuple[float, np.ndarray, str]] = []
    t = 0.5
    for i, text in enumerate(LINES):
        speaker = speakers[i % len(speakers)]
        clip = _speak(text, VOICES[speaker], directory / f"{name}-{i}.wav")
        placed.append((t, clip, speaker))
        if overlap and len(speakers) > 1 and i % 3 == 1:  # a backchannel from the previous speaker mid-turn
            other = speakers[(i - 1) % len(speakers)]
            bc = _speak(BACKCHANNELS[i % len(BACKCHANNELS)], VOICES[other], directory / f"{name}-bc{i}.wav")
            placed.append((t + len(clip) / SR * 0.5, bc, other))
        t += len(clip) / SR + float(rng.uniform(0.2, 0.8))
    mix = np.zeros(int((t + 0.5) * SR), dtype=np.float32)
    for start, clip, _ in placed:
        mix[int(start * SR) : int(start * SR) + len(clip)] += clip * 0.5
    dry = write_wav(directory / f"{name}-dry.wav", np.clip(mix, -1, 1))
    wet = directory / f"{name}-wet.wav"
    subprocess.run(["sox", str(dry), str(wet), "reverb", "60", "50", "80", "gain", "-n", "-6"], check=True)
    samples = load_16k(wet)[: len(mix)]
    samples = samples + rng.normal(0, 0.004, len(samples)).astype(np.float32)
    path = write_wav(directory / f"{name}.wav", np.clip(samples, -1, 1))
    reference = annotation(((s, s + len(c) / SR, k) for s, c, k in placed), name)
    return path, reference
