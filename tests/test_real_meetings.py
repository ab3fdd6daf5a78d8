"""Speaker count and confusion of the offline diarizer on meetings built from real recordings (in-process).

Each meeting (tests/real_meetings.py) has 2-4 different readers taking turns with overlaps and
backchannels; the diarizer gets no speaker bounds and must find exactly as many speakers as there
are, with at most 15% of the reference speech given to the wrong speaker (pyannote.metrics, collar
0.25 s, overlap scored). ami_dev00's count and confusion through the server are checked in
tests/test_diarization_meetings.py; here on the diarizer's own turns.
"""

from __future__ import annotations

import pytest

from tests.diarization_utils import annotation, der

MEETINGS = [(2, 0), (3, 1), (4, 0)]  # (speakers, seed); 2:0 and 4:0 were over-counted (3 and 5) before


@pytest.fixture(scope="module")
def diarizer():
    from audio_service.diarization.offline import DiarizerRegistry
    from audio_service.settings import Settings

    return DiarizerRegistry(Settings()).get(None)


def diarize(diarizer, samples, uri):
    from audio_service.diarization.offline import SpeakerBounds
    from audio_service.schema import Audio

    turns = diarizer(Audio(samples), SpeakerBounds(None, None))
    return annotation(((t.start, t.end, t.speaker) for t in turns), uri)


@pytest.mark.parametrize(("speakers", "seed"), MEETINGS, ids=[f"{n}spk-seed{s}" for n, s in MEETINGS])
def test_built_meeting_speakers_are_counted_and_kept_apart(diarizer, speakers, seed):
    from tests.real_meetings import build_real_meeting

    samples, reference = build_real_meeting(speakers, seed)
    assert len(reference.labels()) == speakers
    hypothesis = diarize(diarizer, samples, reference.uri)
    score = der(reference, hypothesis)
    assert len(hypothesis.labels()) == speakers, score
    assert score["confusion_s"] / score["total_s"] <= 0.15, score


def test_ami_meeting_excerpt_has_two_speakers_and_little_confusion(diarizer):
    from tests.audio_utils import DATA, load_16k
    from tests.diarization_utils import reference_rttm

    reference = reference_rttm("ami_dev00")
    hypothesis = diarize(diarizer, load_16k(DATA / "ami_dev00.wav"), "ami_dev00")
    score = der(reference, hypothesis)
    assert len(hypothesis.labels()) == 2, score
    assert score["confusion_s"] / score["total_s"] <= 0.15, score


def test_the_builder_is_deterministic_and_lays_out_overlaps_and_backchannels():
    import numpy as np

    from tests.real_meetings import build_real_meeting

    a, ref_a = build_real_meeting(3, seed=7)
    b, ref_b = build_real_meeting(3, seed=7)
    assert np.array_equal(a, b) and ref_a == ref_b
    assert a.dtype == np.float32 and 40.0 <= len(a) / 16000 <= 90.0
    assert len(ref_a.labels()) == 3
    assert ref_a.get_overlap().duration() > 1.0  # overlapping turns and backchannels
