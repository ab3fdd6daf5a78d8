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


def tiled(reference, copies: int, period: float, uri: str = "tiled"):
    """``reference`` (an Annotation) repeated ``copies`` times, ``period`` seconds apart."""
    from pyannote.core import Annotation, Segment

    out = Annotation(uri=uri)
    for k in range(copies):
        for seg, track, label in reference.itertracks(yield_label=True):
            out[Segment(seg.start + k * period, seg.end + k * period), (k, track)] = label
    return out


def annotation(turns: Iterable[tuple[float, float, str]], uri: str = "file"):
    """(start, end, speaker) triples -> pyannote Annotation."""
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for i, (start, end, speaker) in enumerate(turns):
        if end > start:
            ann[Segment(start, end), i] = speaker
    return ann


def der(reference, hypothesis, skip_overlap: bool = False, uem=None) -> dict[str, float]:
    """DER with pyannote.metrics (collar 0.25 s, overlap scored unless ``skip_overlap``) and its
    components in seconds; ``uem`` limits scoring to a timeline (e.g. the speech the words cover)."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=COLLAR, skip_overlap=skip_overlap)
    d = metric(reference, hypothesis, detailed=True, uem=uem)
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


def word_accuracy(reference, words: list[dict]) -> float | None:
    """Share of words inside exactly one reference turn whose speaker maps (optimally) onto that turn's."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    mapping = DiarizationErrorRate().optimal_mapping(reference, word_turns_annotation(words, reference.uri))
    turns = [(seg.start, seg.end, spk) for seg, _, spk in reference.itertracks(yield_label=True)]
    checked = correct = 0
    for w in words:
        touching = {spk for s, e, spk in turns if min(e, w["end"]) > max(s, w["start"])}
        if len(touching) == 1:
            checked += 1
            correct += mapping.get(w["speaker_id"]) in touching
    return round(correct / checked, 3) if checked else None


def reference_rttm(name: str):
    """The RTTM reference of a shared data file (``ami_dev00``, ``two_speakers``) as an Annotation."""
    from pyannote.database.util import load_rttm

    return load_rttm(str(TWO_SPEAKERS_RTTM.parent / f"{name}.rttm"))[name]


def clean_turns(reference, min_s: float = 1.0) -> list[tuple[float, float, str]]:
    """(start, end, speaker) of reference turns trimmed to where no other speaker talks."""
    tracks = list(reference.itertracks(yield_label=True))
    out = []
    for seg, _, spk in tracks:
        a, b = seg.start, seg.end
        for other, _, k in tracks:
            if k != spk and other.end > a and other.start < b:
                if other.start <= a:
                    a = max(a, other.end)
                if other.end >= b:
                    b = min(b, other.start)
        if b - a >= min_s:
            out.append((a, b, spk))
    return out


def build_real_voices(directory: Path):
    """A ~34 s file of four recorded voices taking turns (two_speakers' two voices, JFK, ami_dev00's
    main speaker; each clip where no one else talks); returns (wav path, reference Annotation)."""
    from tests.audio_utils import DATA, JFK

    sr = 16000
    ts, ami, jfk = load_16k(TWO_SPEAKERS_RTTM.with_suffix(".wav")), load_16k(DATA / "ami_dev00.wav"), load_16k(JFK)
    tt = clean_turns(reference_two_speakers())
    a_turns = [ts[int(a * sr) : int(b * sr)] for a, b, k in tt if k == tt[0][2]]
    b_turns = [ts[int(a * sr) : int(b * sr)] for a, b, k in tt if k != tt[0][2]]
    m = next(ami[int(a * sr) : int(b * sr)] for a, b, k in clean_turns(reference_rttm("ami_dev00")) if k == "MEE009")
    j = int(5.3 * sr)
    pieces = [
        (m[: 6 * sr], "M"),
        (a_turns[0], "A"),
        (jfk[:j], "J"),
        (b_turns[0], "B"),
        (m[6 * sr :], "M"),
        (jfk[j:], "J"),
        (a_turns[1], "A"),
    ]
    parts, turns, t = [], [], 0.0
    for i, (clip, speaker) in enumerate(pieces):
        parts.append(clip)
        turns.append((t, t + len(clip) / sr, speaker))
        gap = GAPS[i % len(GAPS)]
        parts.append(np.zeros(int(gap * sr), dtype=np.float32))
        t += len(clip) / sr + gap
    directory.mkdir(parents=True, exist_ok=True)
    path = write_wav(directory / "real_voices.wav", np.concatenate(parts).astype(np.float32))
    return path, annotation(turns, "real_voices")


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
