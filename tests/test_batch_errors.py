"""A bad batch upload gets its 4xx and the real server keeps transcribing.

Every validation case, the API keys, the upload limit and the waiting room (429) are tested
in-process on a fake backend (tests/fast/test_batch_validation.py); this is the end-to-end check
that the real server, with its real model, answers the same way and stays healthy.
"""

from __future__ import annotations

import numpy as np

from tests.audio_utils import JFK_TEXT, wer
from tests.http_utils import assert_error, jfk_file, post


def test_bad_upload_then_real_transcription(server) -> None:
    noise = bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8))
    assert_error(post(server, ("a.mp3", noise, "audio/mpeg")), 400, "file", "invalid_audio")
    assert_error(post(server, jfk_file(), {"model": "whisper-99"}), 404, "model", "model_not_found")
    r = post(server, jfk_file(), {"response_format": "json"})
    assert r.status_code == 200, r.text
    assert wer(JFK_TEXT, r.json()["text"]) <= 0.10
