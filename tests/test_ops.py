"""Hosted-API operations against the real server: metrics, hashed named keys, per-key quotas, request
ids and JSON request logs.

One server (keys file made with ``audio-service keys add``, JSON logs) serves the tests. (Quotas shared
through Redis by two apps: tests/fast/test_ops.py.)
"""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest
import websockets

from tests.audio_utils import JFK, JFK_TEXT, load_16k, normalize, wer
from tests.ops_utils import add_key, json_lines, scrape, value, wait_for
from tests.server import ServerProcess
from tests.stream_client import expect_close, stream, url_for

TRANSCRIBE = "/v1/audio/transcriptions"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    made = {
        "alice": add_key(path, "alice"),
        "bob": add_key(path, "bob"),
        "small": add_key(path, "small", "--audio-seconds-per-minute", "20"),
        "tiny": add_key(path, "tiny", "--audio-seconds-per-minute", "6"),
    }
    return {"file": path, **made}


@pytest.fixture(scope="module")
def srv(tmp_path_factory, keys):
    log = tmp_path_factory.mktemp("ops") / "server.log"
    with ServerProcess(log_path=log, auth={"keys_file": str(keys["file"])}, server={"log_format": "json"}) as s:
        s.log = log
        yield s


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    return load_16k(JFK)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def transcribe(srv: ServerProcess, key: str | None, **headers: str) -> httpx.Response:
    with JFK.open("rb") as f:
        return httpx.post(
            srv.base_url + TRANSCRIBE,
            files={"file": ("jfk.flac", f, "audio/flac")},
            data={"language": "en"},
            headers={**(auth(key) if key else {}), **headers},
            timeout=300,
        )


def test_metrics_after_one_request_and_one_stream(srv, keys, jfk) -> None:
    before = scrape(srv)
    r = transcribe(srv, keys["alice"])
    assert r.status_code == 200 and wer(JFK_TEXT, r.json()["text"]) <= 0.1
    result = asyncio.run(stream(srv.ws_url, jfk, pace=3, headers=auth(keys["alice"]), params={"language": "en"}))
    assert result.checkpoints == ["final"] and wer(JFK_TEXT, result.text) <= 0.15
    # the stream is counted when the server has finished with it (just after the client saw its end)
    after = wait_for(
        lambda: (
            (m := scrape(srv))
            and value(m, "audio_service_streams_total", model="whisper-base")
            > value(before, "audio_service_streams_total", model="whisper-base")
            and m
        ),
        what="the stream to end",
    )

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"route": TRANSCRIBE, "method": "POST", "status": "200", "model": "whisper-base"}
    assert delta("audio_service_requests_total", **ok) == 1
    assert delta("audio_service_request_duration_seconds_count", route=TRANSCRIBE, method="POST") == 1
    assert delta("audio_service_audio_seconds_total", mode="batch", model="whisper-base") == pytest.approx(11.0, abs=0.2)
    assert delta("audio_service_audio_seconds_total", mode="streaming", model="whisper-base") == pytest.approx(11.0, abs=0.2)
    for mode in ("batch", "streaming"):
        assert delta("audio_service_realtime_factor_count", mode=mode, model="whisper-base") == 1
        rtf = delta("audio_service_realtime_factor_sum", mode=mode, model="whisper-base")
        assert 0 < rtf < 5, (mode, rtf)
    assert delta("audio_service_streams_total", model="whisper-base") == 1
    assert value(after, "audio_service_active_streams", model="whisper-base") == 0
    assert delta("audio_service_stream_final_latency_seconds_count", model="whisper-base") >= 1
    assert delta("audio_service_stream_partial_latency_seconds_count", model="whisper-base") >= 1
    assert delta("audio_service_stream_lag_seconds_count", model="whisper-base") >= 1
    final_mean = delta("audio_service_stream_final_latency_seconds_sum", model="whisper-base") / delta(
        "audio_service_stream_final_latency_seconds_count", model="whisper-base"
    )
    assert 0 <= final_mean < 30
    assert value(after, "audio_service_queue_depth") == 0 and value(after, "audio_service_busy_workers") == 0
    assert 0 < value(after, "audio_service_model_load_seconds", model="whisper-base") < 600


def test_keys_file_hashed_key_wrong_key_and_no_key_leaks(srv, keys) -> None:
    assert transcribe(srv, keys["bob"]).status_code == 200
    wrong = transcribe(srv, keys["bob"][:-2] + "xx")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
    assert transcribe(srv, None).status_code == 401

    async def wrong_stream():
        async with websockets.connect(url_for(srv.ws_url), additional_headers=auth("not-a-key")) as ws:
            return await expect_close(ws)

    errors, code = asyncio.run(wrong_stream())
    assert code == 1008 and errors[-1]["code"] == "invalid_api_key"
    metrics = httpx.get(f"{srv.base_url}/metrics").text
    assert 'audio_service_errors_total{type="invalid_api_key"}' in metrics
    assert 'audio_service_stream_closes_total{code="1008"}' in metrics
    log = srv.log.read_text()
    for name in ("alice", "bob", "small", "tiny"):
        assert keys[name] not in log and keys[name] not in metrics
    assert any(line.get("key") == "bob" and line.get("status") == 200 for line in json_lines(srv.log))


def test_request_id_round_trip_and_json_request_log(srv, keys) -> None:
    r = transcribe(srv, keys["alice"], **{"X-Request-ID": "trace-42"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-42"
    bad = httpx.post(srv.base_url + TRANSCRIBE, data={"language": "en"}, headers={**auth(keys["alice"]), "X-Request-ID": "e-1"})
    assert bad.status_code == 400
    body = bad.json()
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["request_id"] == "e-1"
    generated = httpx.get(srv.base_url + "/v1/models", headers=auth(keys["alice"])).headers["x-request-id"]
    assert generated.startswith("req_")

    def line(rid: str) -> dict | None:
        return next((x for x in json_lines(srv.log) if x.get("request_id") == rid and x.get("message") == "request"), None)

    entry = wait_for(lambda: line("trace-42"), what="the request's log line")
    assert entry["key"] == "alice" and entry["route"] == TRANSCRIBE and entry["model"] == "whisper-base"
    assert entry["status"] == 200 and entry["audio_s"] == pytest.approx(11.0, abs=0.2) and entry["processing_s"] > 0
    assert wait_for(lambda: line("e-1"))["status"] == 400


def test_stream_over_audio_quota_is_flushed_then_closed(srv, keys, jfk) -> None:
    """6 s/min: the stream's first 6 s are transcribed and sent final, then error + close 4029."""
    r = asyncio.run(stream(srv.ws_url, jfk, pace=4, headers=auth(keys["tiny"]), params={"language": "en"}, final=False))
    assert r.close_code == 4029, (r.close_code, r.errors)
    assert r.errors[-1]["code"] == "rate_limit_exceeded" and "accepted" in r.errors[-1]["message"]
    assert r.segments and r.all_final and not r.final_changed
    words = normalize(r.text).split()
    reference = normalize(JFK_TEXT).split()
    # the accepted 6 s hold "and so my fellow americans ask not ..." (the words at the cut may be garbled)
    assert len(words) >= 6 and words[:6] == reference[:6], r.text
    assert 5.0 <= max(seg["end"] for seg in r.segments.values()) <= 6.5  # transcribed up to the accepted audio's end
    # a new stream of the same key is refused at once; another key streams normally
    again = asyncio.run(stream(srv.ws_url, jfk[: 16000 * 2], pace=0, headers=auth(keys["tiny"]), final=False))
    assert again.close_code == 4029 and not again.segments
    ok = asyncio.run(stream(srv.ws_url, jfk, pace=0, headers=auth(keys["bob"]), params={"language": "en"}))
    assert ok.checkpoints == ["final"] and wer(JFK_TEXT, ok.text) <= 0.15
