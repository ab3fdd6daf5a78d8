"""Meetings built from real recordings: 2-5 different readers taking turns, with overlaps and backchannels.

The readers are the shared recordings (``../shared/data``): the 11 read-speech files of ``realspeech/``
(LibriSpeech, LibriVox, FLEURS; each file one reader), ``jfk.flac`` and the two speakers of
``two_speakers.wav`` (their clean turns, from its RTTM). Each reader's recording is cut at pauses
(the service's Silero VAD) into utterance-sized pieces; turns alternate between the readers with
short gaps, some turns start 0.3-1 s before the previous one ends (overlap), and some carry a
0.3-0.8 s backchannel of another reader laid under them. Each reader gets its own gain (loudness
normalised first, then a mild +-3 dB), and a low noise floor is added. The reference is the VAD
speech inside each placed piece, as a ``pyannote.core.Annotation``. Deterministic for a seed.

    audio, reference = build_real_meeting(4, seed=1)
    write_rttm(reference, path)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.audio_utils import JFK, REALSPEECH, TWO_SPEAKERS, load_16k, realspeech_manifest

SR = 16000
PIECE_S = (1.5, 6.0)  # utterance-sized pieces, cut at pauses
GAP_S = (0.2, 0.8)  # silence between turns
OVERLAP_S = (0.3, 1.0)  # a turn starting this much before the previous one ends
BACKCHANNEL_S = (0.3, 0.8)
P_OVERLAP = 0.3
P_BACKCHANNEL = 0.3
GAIN_DB = 3.0
NOISE = 0.002
# Silero on clean read speech: pauses of 200 ms and more separate spans, little padding so the
# reference is the speech itself.
VAD_MIN_SILENCE_MS = 100
VAD_PAD_MS = 30


@dataclass(frozen=True)
class Reader:
    name: str
    group: str  # source + language: readers of different groups are preferred (surely different people)
    samples: np.ndarray
    spans: tuple[tuple[float, float], ...]  # speech (seconds) in ``samples``

    def pieces(self) -> list[tuple[int, int, list[tuple[float, float]]]]:
        """(start, end) sample bounds of utterance-sized pieces cut at pauses, and the speech inside
        each (seconds from the piece's start)."""
        out, group = [], []
        for span in self.spans:
            group.append(span)
            if group[-1][1] - group[0][0] >= PIECE_S[0]:
                out.append(group)
                group = []
        if group:
            if out and group[-1][1] - out[-1][0][0] <= PIECE_S[1]:
                out[-1] += group
            elif group[-1][1] - group[0][0] >= 0.8:
                out.append(group)
        split = []
        for g in out:  # a long stretch without pauses: cut into equal parts (at the nearest span edge or mid-speech)
            length = g[-1][1] - g[0][0]
            parts = max(1, int(np.ceil(length / PIECE_S[1])))
            if parts == 1:
                split.append(g)
                continue
            edges = np.linspace(g[0][0], g[-1][1], parts + 1)
            for a, b in zip(edges[:-1], edges[1:], strict=True):
                inside = [(max(s, a), min(e, b)) for s, e in g if min(e, b) > max(s, a)]
                if inside:
                    split.append(inside)
        return [(int(g[0][0] * SR), int(g[-1][1] * SR), [(s - g[0][0], e - g[0][0]) for s, e in g]) for g in split]


def _vad_spans(samples: np.ndarray) -> list[tuple[float, float]]:
    from audio_service.schema import Audio
    from audio_service.vad.params import VadParams
    from audio_service.vad.silero import silero_vad

    params = VadParams(min_silence_duration_ms=VAD_MIN_SILENCE_MS, speech_pad_ms=VAD_PAD_MS)
    return [(s.start, s.end) for s in silero_vad(Audio(samples), params)]


def _manifest() -> list[tuple[str, str, str]]:
    """(file, language, source) of the realspeech recordings."""
    # the source from the file's name: librispeech, librivox, fleurs
    return [(name, row["language"], name.split("_")[1]) for name, row in realspeech_manifest().items()]


@functools.cache
def readers() -> tuple[Reader, ...]:
    """Every reader of the shared recordings, in a fixed order."""
    from tests.diarization_utils import clean_turns, reference_two_speakers

    out = []
    for name, language, source in _manifest():
        samples = load_16k(REALSPEECH / name)
        out.append(Reader(Path(name).stem, f"{source}-{language}", samples, tuple(_vad_spans(samples))))
    jfk = load_16k(JFK)
    out.append(Reader("jfk", "jfk", jfk, tuple(_vad_spans(jfk))))
    two = load_16k(TWO_SPEAKERS)
    turns = clean_turns(reference_two_speakers(), min_s=1.0)
    for label in sorted({k for *_, k in turns}):
        clip = np.concatenate(
            [
                np.concatenate([two[int(a * SR) : int(b * SR)], np.zeros(int(0.4 * SR), np.float32)])
                for a, b, k in turns
                if k == label
            ]
        )
        out.append(Reader(f"two_speakers_{label}", "two_speakers", clip, tuple(_vad_spans(clip))))
    return tuple(out)


def pick_readers(count: int, rng: np.random.Generator) -> list[Reader]:
    """``count`` different readers, different source/language groups first (shuffled by ``rng``)."""
    pool = list(readers())
    order = [pool[i] for i in rng.permutation(len(pool))]
    chosen: list[Reader] = []
    for reader in order:  # one per group first ...
        if len(chosen) < count and reader.group not in {r.group for r in chosen}:
            chosen.append(reader)
    for reader in order:  # ... then any other file
        if len(chosen) < count and reader not in chosen:
            chosen.append(reader)
    return chosen


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1.0


def build_real_meeting(speakers: int, seed: int = 0, duration: float | None = None, name: str | None = None):
    """A meeting of ``speakers`` (2-5) different readers: (16 kHz float32 samples, reference Annotation).

    ``duration``: the length aimed at (default 40-50 s for two speakers, 10 s more per further speaker)."""
    from pyannote.core import Annotation, Segment

    if not 2 <= speakers <= 5:
        raise ValueError("2 to 5 speakers")
    rng = np.random.default_rng(seed)
    chosen = pick_readers(speakers, rng)
    target = duration or float(min(90.0, 40.0 + 10.0 * (speakers - 2) + rng.uniform(0.0, 10.0)))
    labels = [f"{chr(ord('A') + i)}_{r.name}" for i, r in enumerate(chosen)]
    level = [
        0.08
        * 10 ** (rng.uniform(-GAIN_DB, GAIN_DB) / 20)
        / _rms(np.concatenate([r.samples[int(s * SR) : int(e * SR)] for s, e in r.spans]))
        for r in chosen
    ]
    pieces = [r.pieces() for r in chosen]
    queues: list[list[int]] = [[] for _ in chosen]

    def next_piece(k: int):
        if not queues[k]:  # every piece once before any repeats, in a seeded order
            queues[k] = list(rng.permutation(len(pieces[k])))
        return pieces[k][queues[k].pop()]

    placed: list[tuple[float, np.ndarray, list[tuple[float, float]], int]] = []
    talked = np.zeros(speakers)
    t, previous, previous_start = 0.5, -1, 0.0
    while t < target - 2.0 or talked.min() == 0:
        others = [k for k in range(speakers) if k != previous]
        weights = np.array([1.0 / (1.0 + talked[k]) for k in others])
        k = int(rng.choice(others, p=weights / weights.sum()))
        a, b, speech = next_piece(k)
        clip = chosen[k].samples[a:b] * level[k]
        start = t + rng.uniform(*GAP_S)
        if previous >= 0 and rng.random() < P_OVERLAP:
            start = max(previous_start + 1.0, t - rng.uniform(*OVERLAP_S))
        placed.append((start, clip, speech, k))
        end = start + len(clip) / SR
        if len(clip) / SR >= 2.5 and rng.random() < P_BACKCHANNEL:  # another reader under this turn
            j = previous if previous >= 0 else int(rng.choice([x for x in range(speakers) if x != k]))
            ba, bb, bspeech = next_piece(j)
            s0, e0 = max(bspeech, key=lambda se: se[1] - se[0])
            length = min(rng.uniform(*BACKCHANNEL_S), e0 - s0)
            offset = s0 + rng.uniform(0.0, max(0.0, e0 - s0 - length))
            bc = chosen[j].samples[ba + int(offset * SR) : ba + int((offset + length) * SR)] * level[j]
            fade = min(len(bc) // 4, int(0.02 * SR))
            if fade:
                ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
                bc = bc.copy()
                bc[:fade] *= ramp
                bc[-fade:] *= ramp[::-1]
            at = start + rng.uniform(0.3, 0.6) * (len(clip) / SR - length)
            placed.append((at, bc, [(0.0, len(bc) / SR)], j))
            talked[j] += len(bc) / SR
        talked[k] += len(clip) / SR
        t, previous, previous_start = max(t, end), k, start
    mix = np.zeros(int((t + 0.5) * SR), dtype=np.float32)
    for start, clip, _, _ in placed:
        i = int(start * SR)
        mix[i : i + len(clip)] += clip
    mix += rng.normal(0.0, NOISE, len(mix)).astype(np.float32)
    uri = name or f"real_meeting_{speakers}spk_seed{seed}"
    reference = Annotation(uri=uri)
    for n, (start, _, speech, k) in enumerate(placed):
        for m, (s, e) in enumerate(speech):
            reference[Segment(start + s, start + e), f"{n}.{m}"] = labels[k]
    return np.clip(mix, -1.0, 1.0), reference


def write_rttm(reference, path: Path) -> Path:
    """The reference as RTTM (one line per speech span)."""
    with open(path, "w") as f:
        reference.write_rttm(f)
    return path


if __name__ == "__main__":  # python -m tests.real_meetings OUT_DIR: a few meetings as WAV + RTTM
    import sys

    from tests.audio_utils import write_wav

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "real_meetings")
    out.mkdir(parents=True, exist_ok=True)
    for n in (2, 3, 4, 5):
        audio, ref = build_real_meeting(n, seed=0)
        write_wav(out / f"{ref.uri}.wav", audio)
        write_rttm(ref, out / f"{ref.uri}.rttm")
        print(ref.uri, f"{len(audio) / SR:.1f} s", sorted(ref.labels()))
