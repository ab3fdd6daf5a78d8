"""How many speakers: the second pass of the offline diarizer.

The first pass (pyannote clustering of per-window GE2E embeddings) is deliberately fine-grained:
one 5 s window of far-field speech gives a noisy GE2E embedding, and two real speakers of a meeting
can sit closer than two windows of one speaker, so a single threshold either merges speakers (one
speaker reported for a two-person meeting) or splits one. Here each first-pass speaker is embedded
once from *all* its clean speech (:mod:`audio_service.diarization.evidence`), and speakers
are merged greedily, closest voices first, while they are closer than ``MERGE_THRESHOLD`` - except
two speakers the segmentation model heard as different local speakers of one window (for at least
``CANNOT_LINK_S`` seconds in all), which are never merged, whatever their embeddings say. That
evidence is what keeps a short, far-field second voice apart; it also sets the floor of the count
(no fewer speakers than were told apart). The request's bounds win over the threshold.
"""

from __future__ import annotations

import numpy as np

from audio_service.diarization.embedding import MIN_EMBED_SECONDS, embed_many
from audio_service.diarization.evidence import WindowEvidence
from audio_service.schema import SAMPLE_RATE

# Euclidean distance between unit GE2E embeddings of two speakers' whole clean speech, calibrated on
# espeak-ng voices (clean and reverberant), two_speakers.wav, ami_dev00.wav and mixtures of recorded
# turns (bench/diarization.py).
MERGE_THRESHOLD = 0.65
RELIABLE_SECONDS = 2.0  # less clean speech than this: a fragment joins its closest speaker regardless
CANNOT_LINK_S = 0.5  # seconds (summed over windows) two speakers were told apart: never merged ...
# ... unless that evidence is weak and their whole clean speech sounds like one voice: on meetings of read
# speech one reader's first-pass parts measured 0.37-0.55 apart (different readers 0.75 and more) and a
# segmentation slip linked them for 0.9-1.5 s; two people told apart for real were linked 6 s and more
# (two_speakers, 0.56 apart) or sounded further apart (ami_dev00, 0.65).
WEAK_LINK_S = 2.0
SAME_VOICE = 0.55
MAX_EMBED_SECONDS = 60.0  # enough speech for a stable embedding; bounds the cost on long files


def merge_same_voices(
    samples: np.ndarray,
    evidence: WindowEvidence,
    min_speakers: int | None,
    max_speakers: int | None,
    centroids: np.ndarray | None = None,
) -> np.ndarray:
    """First-pass cluster -> merged speaker index (0..n-1), from 16 kHz ``samples`` and window evidence.

    Clusters with too little clean speech to embed (``MIN_EMBED_SECONDS``: overlaps, backchannels) have
    no voice to compare, so they take no part in the greedy merge: all their embeddings would be the
    same zero vector, they would merge with one another first and, holding every cannot-link of their
    members, block the merges of real voices (a long two-person file came out as three speakers). Each
    joins, afterwards, the speaker it was never told apart from whose first-pass ``centroids`` (the
    windows' embeddings) is closest."""
    count = len(evidence.clean_seconds)
    if count < 2:
        return np.zeros(count, dtype=int)
    seconds = evidence.clean_seconds
    embeddings = np.zeros((count, 256), dtype=np.float32)
    embeddable = [k for k in range(count) if seconds[k] >= MIN_EMBED_SECONDS]
    if embeddable:
        embeddings[embeddable] = embed_many([_speech(samples, evidence.clean_spans[k]) for k in embeddable])
    lower = max(1, min_speakers or 1)
    voiced = len(embeddable) >= max(2, lower)  # else (too few voices to count on) every cluster takes part
    groups = [[k] for k in (embeddable if voiced else range(count))]
    while len(groups) > lower:
        best = closest_pair(groups, embeddings, seconds, evidence.apart_seconds)
        if best is None:
            break
        i, j, distance, reliable = best
        too_many = max_speakers is not None and len(groups) > max_speakers
        if reliable and distance >= MERGE_THRESHOLD and not too_many:
            break
        groups[i] += groups.pop(j)
    if voiced:
        for k in sorted(set(range(count)) - set(embeddable)):
            groups[_home(k, groups, evidence.apart_seconds, centroids)].append(k)
    mapping = np.zeros(count, dtype=int)
    for index, group in enumerate(sorted(groups)):
        mapping[group] = index
    return mapping


def _home(k: int, groups: list[list[int]], apart: np.ndarray, centroids: np.ndarray | None) -> int:
    """The group a cluster without a voice of its own joins: fewest seconds told apart from it, then the
    closest first-pass centroid (cosine), then the most members."""

    def key(g: int) -> tuple[float, float, int]:
        told_apart = float(apart[k, groups[g]].sum())
        if centroids is None:
            return told_apart, 0.0, -len(groups[g])
        mean = centroids[groups[g]].mean(axis=0)
        cosine = float(mean @ centroids[k] / ((np.linalg.norm(mean) * np.linalg.norm(centroids[k])) or 1.0))
        return told_apart, -cosine, -len(groups[g])

    return min(range(len(groups)), key=key)


def _speech(samples: np.ndarray, spans: list[tuple[float, float]], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    pieces = [samples[int(s * sample_rate) : int(e * sample_rate)] for s, e in spans]
    joined = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return joined[: int(MAX_EMBED_SECONDS * sample_rate)].astype(np.float32)


def closest_pair(groups, embeddings, seconds, apart):
    """(i, j, distance, reliable) of the two closest groups that may merge, or None.

    Groups told apart (``CANNOT_LINK_S``) may not merge, unless only weakly (``WEAK_LINK_S``) while their
    voices are very close (``SAME_VOICE``). A group with too little clean speech for a reliable embedding
    (``RELIABLE_SECONDS``; GE2E halves of one voice then measure as far apart as two voices) goes to its
    closest group regardless.
    """
    vectors, speech = [], []
    for g in groups:
        v = (embeddings[g] * np.maximum(seconds[g, None], 0.1)).sum(axis=0)
        vectors.append(v / (np.linalg.norm(v) or 1.0))
        speech.append(seconds[g].sum())
    best = None
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            distance = float(np.linalg.norm(vectors[i] - vectors[j]))
            linked = apart[np.ix_(groups[i], groups[j])].sum()
            if linked >= CANNOT_LINK_S and not (linked < WEAK_LINK_S and distance < SAME_VOICE):
                continue
            reliable = min(speech[i], speech[j]) >= RELIABLE_SECONDS
            key = (reliable, distance)
            if best is None or key < (best[3], best[2]):
                best = (i, j, distance, reliable)
    return best
