"""Health, readiness, the model list and the model header, on the real server."""

from __future__ import annotations

import httpx

from tests.audio_utils import JFK


def test_health_ready_and_models(server) -> None:
    features = {"diarization": True, "pyannote_vad": True, "mms_alignment": True, "ray": True}  # the suite runs on [all]
    assert httpx.get(f"{server.base_url}/health").json() == {"status": "ok", "features": features}
    ready = httpx.get(f"{server.base_url}/ready").json()
    assert ready["status"] == "ready" and "whisper-base" in ready["models"]
    cards = {c["id"]: c for c in httpx.get(f"{server.base_url}/v1/models").json()["data"]}
    assert cards["whisper-base"]["source"] == "packaged:whisper-base"
    for alias in ("whisper-v3", "whisper-v3-turbo", "whisper-1"):
        assert cards[alias]["alias_of"] == "whisper-base"
    assert httpx.get(f"{server.base_url}/v1/models/whisper-v3").json()["alias_of"] == "whisper-base"
    assert httpx.get(f"{server.base_url}/v1/models/nope").status_code == 404


def test_response_names_the_model_that_ran(server) -> None:
    r = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions",
        files={"file": JFK.open("rb")},
        data={"model": "whisper-tiny.en", "response_format": "text"},
        timeout=120,
    )
    assert r.status_code == 200 and "country" in r.text.lower()
    assert r.headers["x-audio-service-model"] == "whisper-tiny.en"


def test_operator_aliases_point_anywhere(tiny_server) -> None:
    """The operator's aliases replace the default ones (tests/conftest.py)."""
    srv = tiny_server
    r = httpx.post(f"{srv.base_url}/v1/audio/transcriptions", files={"file": JFK.open("rb")}, data={"model": "fast"}, timeout=120)
    assert r.status_code == 200 and r.headers["x-audio-service-model"] == "whisper-tiny.en"
    r = httpx.post(
        f"{srv.base_url}/v1/audio/transcriptions", files={"file": JFK.open("rb")}, data={"model": "whisper-1"}, timeout=120
    )
    assert r.status_code == 404  # whisper-1 is not an alias on this server
