"""What the segmentation model says about who is who, read off its per-window output.

pyannote's segmentation model separates up to three *local* speakers inside each 5 s window (the
windows overlap, one starts every second). Two facts follow that GE2E embeddings of far-field speech
cannot give reliably:

* two local speakers of one window, both talking there for a while, are different people - a
  window-level cannot-link that holds even where they never talk at the same time;
* the frames where exactly one local speaker is active are clean speech of that speaker; voting
  over the overlapping windows gives each first-pass cluster its clean speech, to be embedded whole
  (far more reliable than one embedding per window).

:func:`window_evidence` computes both from the binarized segmentation and the first-pass hard
clusters; :mod:`audio_service.diarization.clustering` decides the number of speakers from them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_LOCAL_ACTIVE_S = 0.5  # a local speaker active less than this in a window is too little to link


@dataclass(frozen=True)
class WindowEvidence:
    """Per first-pass cluster: clean speech spans (seconds) and its clean duration; and between
    clusters, the seconds of evidence (summed over windows) that they are different people."""

    clean_spans: list[list[tuple[float, float]]]
    clean_seconds: np.ndarray  # (clusters,)
    apart_seconds: np.ndarray  # (clusters, clusters), symmetric


def window_evidence(hard_clusters: np.ndarray, segmentations, num_clusters: int) -> WindowEvidence:
    """Evidence from ``segmentations`` (pyannote ``SlidingWindowFeature``, (chunks, frames, local
    speakers) of 0/1) and ``hard_clusters`` ((chunks, local speakers) cluster per local speaker, <0 = none)."""
    data = np.nan_to_num(np.asarray(segmentations.data, dtype=np.float32)) > 0.5
    chunks, frames, local = data.shape
    window = segmentations.sliding_window
    frame_s = window.duration / frames
    # Cannot-link: two clusters active as different local speakers of one window, each heard alone there
    # for a while. A local speaker heard only under another one (a backchannel, an overlap) has no clean
    # frames: pyannote then embeds it with the other voice mixed in, and the constrained assignment puts
    # it in a cluster of that other voice - a cannot-link between two clusters of one speaker.
    alone = data.sum(axis=2) == 1  # (chunks, frames)
    active_s = (data & alone[:, :, None]).sum(axis=1) * frame_s  # (chunks, local) seconds heard alone
    apart = np.zeros((num_clusters, num_clusters))
    for c in range(chunks):
        for i in range(local):
            for j in range(i + 1, local):
                a, b = hard_clusters[c, i], hard_clusters[c, j]
                if a < 0 or b < 0 or a == b:
                    continue
                if min(active_s[c, i], active_s[c, j]) < MIN_LOCAL_ACTIVE_S:
                    continue
                weight = min(active_s[c, i], active_s[c, j])
                apart[a, b] += weight
                apart[b, a] += weight
    # Clean speech: a global frame belongs to the cluster that most windows covering it hear alone.
    offsets = np.rint((np.array([window[c].start for c in range(chunks)]) - window.start) / frame_s).astype(int)
    total = offsets[-1] + frames
    votes = np.zeros((num_clusters + 1, total))
    cover = np.zeros(total)
    for c in range(chunks):
        cover[offsets[c] : offsets[c] + frames] += 1
        for i in range(local):
            k = hard_clusters[c, i]
            if k >= 0:
                votes[k, offsets[c] : offsets[c] + frames] += data[c, :, i] & alone[c]
    best = votes[:num_clusters].argmax(axis=0)
    clean = votes[:num_clusters].max(axis=0) * 2 > np.maximum(cover, 1)
    spans: list[list[tuple[float, float]]] = [[] for _ in range(num_clusters)]
    start = None
    for t in range(total + 1):
        inside = t < total and clean[t]
        if start is not None and (not inside or best[t] != best[start]):
            spans[best[start]].append((window.start + start * frame_s, window.start + t * frame_s))
            start = None
        if inside and start is None:
            start = t
    seconds = np.array([sum(e - s for s, e in sp) for sp in spans])
    return WindowEvidence(spans, seconds, apart)
