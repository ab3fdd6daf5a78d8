"""Speaker counting without bounds through the real batch endpoint, on recorded voices taking turns."""

from __future__ import annotations

import httpx

from tests.diarization_utils import build_real_voices, word_accuracy

DIARIZE = {
    "response_format": "verbose_json",
    "timestamp_granularities[]": ["word", "segment"],
    "diarize": "true",
    "language": "en",
}


def test_four_recorded_voices_are_counted_and_words_attributed(server, tmp_path):
    """two_speakers' two voices, JFK and an AMI meeting speaker, each clip where nobody else talks."""
    path, reference = build_real_voices(tmp_path)
    with open(path, "rb") as f:
        r = httpx.post(f"{server.base_url}/v1/audio/transcriptions", files={"file": f}, data=DIARIZE, timeout=300)
    assert r.status_code == 200, r.text
    words = r.json()["words"]
    assert len({w["speaker_id"] for w in words}) == 4
    assert word_accuracy(reference, words) >= 0.9


def test_far_field_meeting_excerpt_finds_both_speakers(server):
    """ami_dev00 (AMI, far-field, two speakers, one of them brief): no bounds given, two speakers
    come back, and of the reference speech the words cover, at most 15% goes to the wrong speaker."""
    from tests.audio_utils import DATA
    from tests.diarization_utils import der, reference_rttm, word_turns_annotation

    with open(DATA / "ami_dev00.wav", "rb") as f:
        r = httpx.post(f"{server.base_url}/v1/audio/transcriptions", files={"file": f}, data=DIARIZE, timeout=300)
    assert r.status_code == 200, r.text
    words = r.json()["words"]
    assert len({w["speaker_id"] for w in words}) == 2
    hypothesis = word_turns_annotation(words, "ami_dev00")
    covered = der(reference_rttm("ami_dev00"), hypothesis, uem=hypothesis.get_timeline().support())
    assert covered["confusion_s"] / covered["total_s"] <= 0.15, covered
