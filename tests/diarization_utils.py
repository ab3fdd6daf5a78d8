"""Shared by diarization tests and benchmarks: DER scoring and a multi-voice file with known turns."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tests.audio_utils import TWO_SPEAKERS_RTTM, espeak, load_16k, write_wav

COLLAR = 0.25

# (espeak-ng voice, sentence): four clearly different synthetic voices, turns alternating.
VOICES = {"A": "en-us", "B": "en+f3", "C": "de", "D": "en+m7"}
TURNS = [
    ("A", "Good morning everyone, thank you for joining the weekly planning meeting today."),
    ("B", "Thanks. I have two updates about the release schedule and the testing plan."),
    ("A", "Please go ahead, we have about twenty minutes before the next call."),
    ("C", "Guten Morgen, ich habe die neuen Zahlen aus dem Lager mitgebracht."),
    ("B", "The release moves by one week because the audio tests found a problem."),
    ("D", "I can help with those tests if somebody sends me the failing files."),
    ("A", "Great, let us make that the first item on the list for tomorrow."),
    ("C", "Die Lieferung kommt am Freitag, und dann können wir weitermachen."),
    ("D", "Sounds good to me, I will write a short summary after this meeting."),
    ("B", "Thank you all, that is everything from my side for this week."),
]
GAPS = [0.6, 0.4, 0.8, 0.5, 0.7, 0.3, 0.6, 0.9, 0.5]


def reference_two_speakers():
    """The RTTM reference of two_speakers.wav as a pyannote Annotation."""
    from pyannote.database.util import load_rttm

    return load_rttm(str(TWO_SPEAKERS_RTTM))["two_speakers"]


def annotation(turns: Iterable[tuple[float, float, str]], uri: str = "file"):
    """(start, end, speaker) triples -> pyannote Annotation."""
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for i, (start, end, speaker) in enumerate(turns):
        if end > start:
            ann[Segment(start, end), i] = speaker
    return ann


def der(reference, hypothesis) -> dict[str, float]:
    """DER with pyannote.metrics (collar 0.25 s, overlap scored) and its components in seconds."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=COLLAR, skip_overlap=False)
    d = metric(reference, hypothesis, detailed=True)
    return {
        "der": float(d["diarization error rate"]),
        "confusion_s": float(d["confusion"]),
        "missed_s": float(d["missed detection"]),
        "false_alarm_s": float(d["false alarm"]),
        "total_s": float(d["total"]),
    }


def segments_annotation(segments: list[dict], uri: str = "file"):
    """Annotation from verbose_json segments carrying ``speaker_id``."""
    return annotation(((s["start"], s["end"], s["speaker_id"]) for s in segments), uri)


def word_turns_annotation(words: list[dict], uri: str = "file", max_gap: float = 1.0):
    """Speaker turns read from a diarized transcript's words: consecutive words of one speaker
    form a turn while the pause between them is at most ``max_gap`` seconds.

    Segments alone under-count speech (sentence segments end at the last word, leaving every pause
    between sentences of one turn as "missed"); this is how "who spoke when" is read off the words.
    """
    turns: list[list] = []
    for w in sorted(words, key=lambda w: w["start"]):
        if turns and turns[-1][2] == w["speaker_id"] and w["start"] - turns[-1][1] <= max_gap:
            turns[-1][1] = max(turns[-1][1], w["end"])
        else:
            turns.append([w["start"], w["end"], w["speaker_id"]])
    return annotation((tuple(t) for t in turns), uri)


def _trim(samples: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.nonzero(np.abs(samples) > threshold)[0]
    return samples[loud[0] : loud[-1] + 1] if len(loud) else samples


def build_joined_voices(directory: Path):
    """A ~45 s file of espeak-ng voices taking turns; returns (wav path, reference Annotation)."""
    directory.mkdir(parents=True, exist_ok=True)
    pieces, turns, t = [], [], 0.0
    for i, (speaker, text) in enumerate(TURNS):
        clip = _trim(load_16k(espeak(text, directory / f"turn{i}.wav", VOICES[speaker], speed=160)))
        pieces.append(clip)
        turns.append((t, t + len(clip) / 16000, speaker))
        t += len(clip) / 16000
        if i < len(GAPS):
            gap = np.zeros(int(GAPS[i] * 16000), dtype=np.float32)
            pieces.append(gap)
            t += GAPS[i]
    path = write_wav(directory / "joined_voices.wav", np.concatenate(pieces).astype(np.float32))
    return path, annotation(turns, "joined_voices")


def final_latencies(result) -> list[float]:
    """Per final segment of a streamed result: wall seconds from sending its last audio to receiving it final."""
    sent = result.sent_audio
    latencies, seen = [], set()
    for t, msg in result.messages:
        for seg in msg.get("segments", []):
            if seg["is_final"] and seg["id"] not in seen and seg["text"].strip():
                seen.add(seg["id"])
                sent_at = next((ts for ts, audio_s in sent if audio_s >= seg["end"]), sent[-1][0])
                latencies.append(max(0.0, t - sent_at))
    return latencies
