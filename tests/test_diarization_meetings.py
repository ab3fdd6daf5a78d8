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
