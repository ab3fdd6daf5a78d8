"""Pure logic of the speaker count: window evidence read off a segmentation, merging with cannot-links."""

from __future__ import annotations

import numpy as np
import pytest

from audio_service.diarization.clustering import closest_pair
from audio_service.diarization.evidence import window_evidence


def _segmentation(data: np.ndarray):
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    return SlidingWindowFeature(data, SlidingWindow(start=0.0, duration=5.0, step=1.0))


def test_two_local_speakers_of_one_window_are_told_apart_and_clean_speech_is_voted():
    frames = 100  # 50 ms frames
    data = np.zeros((3, frames, 3), dtype=np.float32)
    data[:, :40, 0] = 1  # local speaker 0 talks first in every window ...
    data[:, 60:, 1] = 1  # ... then local speaker 1, never at the same time
    hard = np.array([[0, 1, -2], [0, 1, -2], [2, 1, -2]])
    ev = window_evidence(hard, _segmentation(data), 3)
    assert ev.apart_seconds[0, 1] == ev.apart_seconds[1, 0] == 4.0  # 2 windows x min(2 s, 2 s)
    assert ev.apart_seconds[2, 1] == 2.0 and ev.apart_seconds[0, 2] == 0.0
    assert ev.clean_seconds.sum() > 0
    for spans in ev.clean_spans:  # clean spans of different clusters never overlap
        assert all(e > s for s, e in spans)
    every = sorted(x for spans in ev.clean_spans for x in spans)
    assert all(a[1] <= b[0] + 1e-9 for a, b in zip(every, every[1:], strict=False))


def test_a_brief_local_speaker_gives_no_cannot_link():
    data = np.zeros((1, 100, 3), dtype=np.float32)
    data[0, :80, 0] = 1
    data[0, 90:95, 1] = 1  # 0.25 s: too little to be sure it is someone else
    ev = window_evidence(np.array([[0, 1, -2]]), _segmentation(data), 2)
    assert ev.apart_seconds[0, 1] == 0.0


def test_closest_voices_merge_first_but_never_across_a_cannot_link():
    e = np.eye(3, dtype=np.float32)
    e[1] = [0.9, 0.436, 0]  # 1 sounds like 0
    e[2] = [0.8, 0.6, 0]
    seconds = np.array([10.0, 10.0, 10.0])
    apart = np.zeros((3, 3))
    i, j, _, reliable = closest_pair([[0], [1], [2]], e, seconds, apart)
    assert {i, j} == {1, 2} and reliable
    apart[1, 2] = apart[2, 1] = 3.0
    i, j, _, _ = closest_pair([[0], [1], [2]], e, seconds, apart)
    assert {i, j} == {0, 1}


def test_a_cluster_without_a_voice_joins_the_speaker_it_was_never_told_apart_from():
    """Pure logic of ``_home``: cannot-links first, then the closest first-pass centroid."""
    from audio_service.diarization.clustering import _home

    groups = [[0, 1], [2]]  # two voices; cluster 3 has no clean speech of its own
    centroids = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.95, 0.05]], dtype=np.float32)
    apart = np.zeros((4, 4))
    assert _home(3, groups, apart, centroids) == 0  # sounds like the first speaker
    apart[3, 0] = apart[0, 3] = 2.0  # but was heard beside cluster 0 in some window
    assert _home(3, groups, apart, centroids) == 1
    assert _home(3, groups, np.zeros((4, 4)), None) == 0  # no centroids: the larger speaker


def test_label_runs_groups_consecutive_items_of_one_label() -> None:
    from audio_service.diarization.words import label_runs

    assert label_runs(["A", "A", "B", "A"], [1, 2, 3, 4]) == [("A", [1, 2]), ("B", [3]), ("A", [4])]
    assert label_runs([], []) == []
    with pytest.raises(ValueError):
        label_runs(["A"], [1, 2])  # one label per item
