"""How many speakers: the second pass of the offline diarizer.

The first pass (pyannote clustering of per-window GE2E embeddings) is deliberately fine-grained:
one 1-5 s window of far-field speech gives a noisy GE2E embedding, and two real speakers of a
meeting can sit closer than two windows of one speaker, so a single threshold either merges
speakers (one speaker reported for a two-person meeting) or splits one. Here each first-pass
speaker is embedded once from *all* its clean speech (no other speaker active), which is far more
reliable, and speakers are merged greedily while their voices are closer than ``MERGE_THRESHOLD``,
except where the segmentation model heard them talk at the same time (two local speakers of one
window are never the same person). The request's bounds win over the threshold.
"""

from __future__ import annotations

import numpy as np

from audio_service.models.speaker_embedding import MIN_EMBED_SECONDS, embed_many
from audio_service.schema import Audio

# Euclidean distance between unit GE2E embeddings of two speakers' whole clean speech, calibrated on
# espeak-ng voices, two_speakers.wav, ami_dev00.wav, jfk and mixtures of their turns (bench/diarization.py):
# halves of one speaker's speech measured 0.29-0.62 apart, different real speakers 0.56-0.9.
MERGE_THRESHOLD = 0.65
CANNOT_LINK_OVERLAP_S = 0.5  # speakers heard together this long are never merged
MAX_EMBED_SECONDS = 60.0  # enough speech for a stable embedding; bounds the cost on long files


def merge_same_voices(audio: Audio, annotation, min_speakers: int | None, max_speakers: int | None) -> dict:
    """Label -> merged label for ``annotation``'s (pyannote, overlapping turns) first-pass speakers."""
    labels = list(annotation.labels())
    if len(labels) < 2:
        return {label: label for label in labels}
    timelines = {label: annotation.label_timeline(label).support() for label in labels}
    clean = {}
    for label in labels:
        others = annotation.subset([x for x in labels if x != label]).get_timeline().support()
        clean[label] = timelines[label].extrude(others)
    seconds = np.array([clean[label].duration() for label in labels])
    # Too little clean speech: embed all its speech (overlap included) if there is enough of that.
    sources = [clean[x] if seconds[k] >= MIN_EMBED_SECONDS else timelines[x] for k, x in enumerate(labels)]
    embeddings = np.zeros((len(labels), 256), dtype=np.float32)
    embeddable = [k for k, tl in enumerate(sources) if tl.duration() >= MIN_EMBED_SECONDS]
    if embeddable:
        embeddings[embeddable] = embed_many([_speech(audio, sources[k]) for k in embeddable])
    together = np.array([[timelines[a].crop(timelines[b]).duration() if a != b else 0.0 for b in labels] for a in labels])
    groups = [[i] for i in range(len(labels))]
    lower = max(1, min_speakers or 1)
    while len(groups) > lower:
        best = closest_pair(groups, embeddings, seconds, together)
        if best is None:
            break
        i, j, distance, reliable = best
        too_many = max_speakers is not None and len(groups) > max_speakers
        if reliable and distance >= MERGE_THRESHOLD and not too_many:
            break
        groups[i] += groups.pop(j)
    return {labels[k]: labels[g[0]] for g in groups for k in g}


def _speech(audio: Audio, timeline) -> np.ndarray:
    pieces = [audio.slice(s.start, s.end).samples for s in timeline]
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return samples[: int(MAX_EMBED_SECONDS * audio.sample_rate)].astype(np.float32)


def closest_pair(groups, embeddings, seconds, together):
    """(i, j, distance, reliable) of the two closest groups that may merge, or None.

    A group with too little clean speech for an embedding goes to its closest group regardless.
    """
    vectors, speech = [], []
    for g in groups:
        v = (embeddings[g] * np.maximum(seconds[g, None], 0.1)).sum(axis=0)
        vectors.append(v / (np.linalg.norm(v) or 1.0))
        speech.append(seconds[g].sum())
    best = None
    for i in range(len(groups)):
        for j in range(i + 1, len(groups)):
            if together[np.ix_(groups[i], groups[j])].sum() >= CANNOT_LINK_OVERLAP_S:
                continue
            distance = float(np.linalg.norm(vectors[i] - vectors[j]))
            reliable = min(speech[i], speech[j]) >= MIN_EMBED_SECONDS
            key = (reliable, distance)
            if best is None or key < (best[3], best[2]):
                best = (i, j, distance, reliable)
    return best
