"""WS /v1/audio/transcriptions/streaming against the real server, the packaged model and real speech.

The protocol itself (authentication, query parameters, every bad frame and its close code, the per-key
stream limit, the idle timeout, silence, VAD options) is tested in-process on a fake backend
(tests/fast/test_stream_protocol.py); here is what needs the real model and a real socket: accuracy
at real time and faster, partials while audio arrives, a bad frame then a healthy session, a client
that drops its TCP connection, memory over many sessions and back-pressure on a fast client.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import psutil
import pytest
import websockets

from tests.audio_utils import JFK_TEXT, wer
from tests.ops_utils import scrape, value, wait_for
from tests.server import ServerProcess
from tests.stream_client import check_segments, expect_close, stream, url_for

AUTH = {"Authorization": "Bearer key-one"}
SR = 16000


@pytest.fixture(scope="module")
def srv(keyed_server):
    """API keys, two streams per key, 32 kB frames, a 20 s backlog (tests/conftest.py)."""
    return keyed_server


def run(coro):
    return asyncio.run(coro)


def assert_healthy(srv: ServerProcess, jfk: np.ndarray) -> None:
    """A normal session on the same server transcribes jfk correctly."""
    r = run(stream(srv.ws_url, jfk, pace=0, headers=AUTH, params={"language": "en"}))
    assert r.checkpoints == ["final"], r.errors
    assert wer(JFK_TEXT, r.text) <= 0.12, r.text


def test_jfk_real_time_50ms_frames(srv, jfk):
    r = run(stream(srv.ws_url, jfk, frame_ms=50, pace=1.0, headers=AUTH, trace_every_s=2.0, checkpoints_at=(5.0,)))
    assert wer(JFK_TEXT, r.text) <= 0.12, r.text
    check_segments(r)
    assert r.checkpoints == ["cp5.0", "final"]
    assert [t["trace_id"] for t in r.traces] == ["t2.00", "t4.00", "t6.00", "t8.00", "t10.00"]
    assert all(t["lag_s"] >= 0 for t in r.traces)
    # partial results arrive while the audio is still being sent
    assert any(not s["is_final"] for _, m in r.messages for s in m.get("segments", []))
    # and words are committed before their segment is final (check_segments: they never changed)
    assert any(w["is_final"] and not s["is_final"] for _, m in r.messages for s in m.get("segments", []) for w in s["words"])
    first_text_at = next(t for t, m in r.messages if m.get("segments"))
    assert first_text_at < 8.0  # text shows up long before the 11 s of audio are sent (about 1 s on an idle machine)


def test_jfk_ten_times_real_time(srv, jfk):
    r = run(stream(srv.ws_url, jfk, frame_ms=50, pace=10.0, headers={"Authorization": "key-one"}))
    assert wer(JFK_TEXT, r.text) <= 0.12, r.text
    check_segments(r)
    assert r.messages[-1][0] < 11.0  # well under the audio's own duration


async def _bad_session(srv, jfk, kind: str):
    """Start a healthy stream, then misbehave; return (error bodies, close code, messages before)."""
    async with websockets.connect(url_for(srv.ws_url, language="en"), additional_headers=AUTH) as ws:
        pcm = (np.clip(jfk[: 2 * SR], -1, 1) * 32767).astype("<i2").tobytes()
        for i in range(0, len(pcm), 3200):
            await ws.send(pcm[i : i + 3200])
        if kind == "odd_length":
            await ws.send(pcm[:3201])
        return await expect_close(ws)


@pytest.mark.parametrize("kind, code, error_code", [("odd_length", 1007, "invalid_frame")])
def test_bad_input_then_healthy_session(srv, jfk, kind, code, error_code):
    errors, close_code = run(_bad_session(srv, jfk, kind))
    assert close_code == code
    assert errors and errors[-1]["code"] == error_code and errors[-1]["type"] and errors[-1]["message"]
    assert set(errors[-1]) == {"message", "type", "param", "code"}
    assert_healthy(srv, jfk)


def test_client_vanishing_mid_stream_frees_its_slot(srv, jfk):
    async def vanish():
        ws = await websockets.connect(url_for(srv.ws_url, language="en"), additional_headers=AUTH)
        pcm = (jfk[: 4 * SR] * 32767).astype("<i2").tobytes()
        for i in range(0, len(pcm), 1600):
            await ws.send(pcm[i : i + 1600])
        await ws.send(json.dumps({"checkpoint_id": "fed"}))
        while json.loads(await asyncio.wait_for(ws.recv(), 30)).get("checkpoint_id") != "fed":
            pass  # the server has taken every frame: drop the connection mid-stream now
        ws.transport.abort()  # no close handshake: the TCP connection just drops

    for _ in range(3):  # more than the key's limit of 2: slots must be released
        run(vanish())
    wait_for_no_streams(srv)
    assert_healthy(srv, jfk)


def wait_for_no_streams(srv: ServerProcess) -> None:
    """Until /metrics shows no open stream (the server notices a vanished client asynchronously)."""
    wait_for(lambda: value(scrape(srv), "audio_service_active_streams") == 0, 60, "the vanished clients' streams to close")


def test_memory_returns_after_twenty_sessions(srv, jfk):
    """Twenty sessions of jfk's first 4 s (what a session leaves behind does not depend on its length)."""
    proc = psutil.Process(srv.pid)

    def one():
        r = run(stream(srv.ws_url, jfk[: 4 * SR], pace=0, headers=AUTH, params={"language": "en"}))
        assert r.checkpoints == ["final"]

    one()
    after_first = proc.memory_info().rss
    for _ in range(19):
        one()
    after_all = proc.memory_info().rss
    assert after_all <= after_first * 1.10, (after_first / 2**20, after_all / 2**20)


def test_fast_client_is_paced_not_dropped(srv, jfk):
    """A client sending 3x jfk (35 s) as fast as it can, with a 20 s backlog limit: nothing is lost, no error.

    The server stops reading while the stream holds 20 s of untranscribed audio (TCP back-pressure),
    so its memory stays bounded and every word still arrives.
    """
    gap = np.zeros(SR, np.float32)
    audio = np.concatenate([jfk, gap, jfk, gap, jfk])
    r = run(stream(srv.ws_url, audio, pace=0, headers=AUTH, params={"language": "en"}, timeout_s=180))
    assert not r.errors and r.checkpoints == ["final"]
    assert wer(" ".join([JFK_TEXT] * 3), r.text) <= 0.12, r.text
    check_segments(r)


def test_skip_vad(srv, jfk):
    """Without VAD the model gets the whole stream as one segment and still transcribes it."""
    r = run(stream(srv.ws_url, jfk, pace=0, headers=AUTH, params={"language": "en", "skip_vad": "true"}))
    assert wer(JFK_TEXT, r.text) <= 0.12 and len(r.segments) == 1
