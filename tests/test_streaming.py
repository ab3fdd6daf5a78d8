"""WS /v1/audio/transcriptions/streaming against the real server, the packaged model and real speech.

One server (with two API keys and a limit of 2 streams per key) serves the module; every bad-input
test is followed by a healthy session on the same server.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import psutil
import pytest
import websockets

from tests.audio_utils import JFK, JFK_TEXT, load_16k, wer
from tests.server import ServerProcess
from tests.stream_client import expect_close, stream, url_for

KEYS = ["key-one", "key-two"]
AUTH = {"Authorization": "Bearer key-one"}
SR = 16000


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    log = tmp_path_factory.mktemp("streaming") / "server.log"
    with ServerProcess(log_path=log, api_keys=KEYS, max_streams_per_key=2, stream_max_frame_bytes=32000) as s:
        yield s


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    return load_16k(JFK)


def run(coro):
    return asyncio.run(coro)


def assert_healthy(srv: ServerProcess, jfk: np.ndarray) -> None:
    """A normal session on the same server transcribes jfk correctly."""
    r = run(stream(srv.ws_url, jfk, pace=0, headers=AUTH, params={"language": "en"}))
    assert r.checkpoints == ["final"], r.errors
    assert wer(JFK_TEXT, r.text) <= 0.12, r.text


def check_segments(r) -> None:
    """Integer ids, finality on segments and words, finals never changed, everything final at the end."""
    assert not r.final_changed, r.final_changed
    assert r.segments and r.all_final
    assert all(isinstance(i, int) for i in r.segments)
    for seg in r.segments.values():
        assert seg["words"], seg
        assert all(w["is_final"] is True for w in seg["words"])
        assert seg["start"] <= seg["end"]
    ids_in_order = [s["id"] for _, m in r.messages for s in m.get("segments", [])]
    first_seen = list(dict.fromkeys(ids_in_order))
    assert first_seen == sorted(first_seen) == list(range(len(first_seen)))  # new ids appear in increasing order


def test_jfk_real_time_50ms_frames(srv, jfk):
    r = run(stream(srv.ws_url, jfk, frame_ms=50, pace=1.0, headers=AUTH, trace_every_s=2.0, checkpoints_at=(5.0,)))
    assert wer(JFK_TEXT, r.text) <= 0.12, r.text
    check_segments(r)
    assert r.checkpoints == ["cp5.0", "final"]
    assert [t["trace_id"] for t in r.traces] == ["t2.00", "t4.00", "t6.00", "t8.00", "t10.00"]
    assert all(t["lag_s"] >= 0 for t in r.traces)
    # partial results arrive while the audio is still being sent
    assert any(not s["is_final"] for _, m in r.messages for s in m.get("segments", []))
    first_text_at = next(t for t, m in r.messages if m.get("segments"))
    assert first_text_at < 8.0  # text shows up long before the 11 s of audio are sent (about 1 s on an idle machine)


def test_jfk_ten_times_real_time(srv, jfk):
    r = run(stream(srv.ws_url, jfk, frame_ms=50, pace=10.0, headers={"Authorization": "key-one"}))
    assert wer(JFK_TEXT, r.text) <= 0.12, r.text
    check_segments(r)
    assert r.messages[-1][0] < 11.0  # well under the audio's own duration


def test_api_key_in_query_and_missing_key(srv, jfk):
    r = run(stream(srv.ws_url, jfk[: 4 * SR], pace=0, params={"Authorization": "key-two"}))
    assert r.checkpoints == ["final"] and "fellow" in r.text.lower()

    async def no_key():
        async with websockets.connect(url_for(srv.ws_url)) as ws:
            return await expect_close(ws)

    errors, code = run(no_key())
    assert code == 1008 and errors[0]["type"] == "authentication_error"


@pytest.mark.parametrize(
    "query, param",
    [
        ({"text_timeout_seconds": "0.5"}, "text_timeout_seconds"),
        ({"language": "xx"}, "language"),
        ({"vad_kwargs": '{"threshold": 2}'}, "vad_kwargs"),
        ({"model": "nope"}, "model"),
    ],
)
def test_bad_query_parameters(srv, query, param):
    async def go():
        async with websockets.connect(url_for(srv.ws_url, **query), additional_headers=AUTH) as ws:
            return await expect_close(ws)

    errors, code = run(go())
    assert code == 1008
    assert errors[0]["param"] == param and errors[0]["message"]


def test_bad_diarize_value_is_refused(srv):
    async def go():
        async with websockets.connect(url_for(srv.ws_url, diarize="perhaps"), additional_headers=AUTH) as ws:
            return await expect_close(ws)

    errors, code = run(go())
    assert code in (1007, 1008) and errors[0]["param"] == "diarize"


async def _bad_session(srv, jfk, kind: str):
    """Start a healthy stream, then misbehave; return (error bodies, close code, messages before)."""
    async with websockets.connect(url_for(srv.ws_url, language="en"), additional_headers=AUTH) as ws:
        pcm = (np.clip(jfk[: 2 * SR], -1, 1) * 32767).astype("<i2").tobytes()
        for i in range(0, len(pcm), 3200):
            await ws.send(pcm[i : i + 3200])
        if kind == "odd_length":
            await ws.send(pcm[:3201])
        elif kind == "oversized":
            await ws.send(b"\x00\x00" * 16001)  # 32002 bytes > stream_max_frame_bytes=32000
        elif kind == "non_json":
            await ws.send("this is not json")
        elif kind == "unknown_type":
            await ws.send(json.dumps({"object": "stt.input.something", "x": 1}))
        elif kind == "audio_after_final":
            await ws.send(json.dumps({"checkpoint_id": "final"}))
            await asyncio.sleep(0.2)
            await ws.send(pcm[:3200])
        return await expect_close(ws)


@pytest.mark.parametrize(
    "kind, code, error_code",
    [
        ("odd_length", 1007, "invalid_frame"),
        ("oversized", 1009, "frame_too_large"),
        ("non_json", 1007, "invalid_frame"),
        ("unknown_type", 1003, "unknown_message_type"),
        ("audio_after_final", 1008, "stream_finished"),
    ],
)
def test_bad_input_then_healthy_session(srv, jfk, kind, code, error_code):
    errors, close_code = run(_bad_session(srv, jfk, kind))
    assert close_code == code
    assert errors and errors[-1]["code"] == error_code and errors[-1]["type"] and errors[-1]["message"]
    assert set(errors[-1]) == {"message", "type", "param", "code"}
    assert_healthy(srv, jfk)


def test_too_many_streams_for_a_key(srv, jfk):
    async def go():
        url = url_for(srv.ws_url, language="en")
        async with websockets.connect(url, additional_headers=AUTH) as a, websockets.connect(url, additional_headers=AUTH) as b:
            await a.send(b"\x00\x00" * 800)
            await b.send(b"\x00\x00" * 800)
            async with websockets.connect(url, additional_headers=AUTH) as c:
                errors, code = await expect_close(c)
            # the other key is unaffected while key-one is at its limit
            other = await stream(srv.ws_url, jfk, pace=0, headers={"Authorization": "Bearer key-two"}, params={"language": "en"})
            # the two open streams still work
            await a.send(json.dumps({"checkpoint_id": "still-here"}))
            answer = json.loads(await asyncio.wait_for(a.recv(), 30))
        return errors, code, other, answer

    errors, code, other, answer = run(go())
    assert code == 1008 and errors[0]["code"] == "too_many_streams"
    assert wer(JFK_TEXT, other.text) <= 0.12
    assert answer == {"checkpoint_id": "still-here"}
    assert_healthy(srv, jfk)  # slots were freed when a and b closed


def test_client_vanishing_mid_stream_frees_its_slot(srv, jfk):
    async def vanish():
        ws = await websockets.connect(url_for(srv.ws_url, language="en"), additional_headers=AUTH)
        pcm = (jfk[: 4 * SR] * 32767).astype("<i2").tobytes()
        for i in range(0, len(pcm), 1600):
            await ws.send(pcm[i : i + 1600])
        await asyncio.sleep(0.3)
        ws.transport.abort()  # no close handshake: the TCP connection just drops

    for _ in range(3):  # more than the key's limit of 2: slots must be released
        run(vanish())
    wait_for_no_streams(srv)
    assert_healthy(srv, jfk)


def wait_for_no_streams(srv: ServerProcess, timeout_s: float = 60.0) -> None:
    """Until /metrics shows no open stream (the server notices a vanished client asynchronously)."""
    import time

    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        families = text_string_to_metric_families(httpx.get(f"{srv.base_url}/metrics", timeout=10).text)
        active = sum(s.value for f in families if f.name == "audio_service_active_streams" for s in f.samples)
        if active == 0:
            return
        time.sleep(0.2)
    raise AssertionError("streams of vanished clients were never released")


def test_sixty_seconds_of_silence_keeps_the_socket_open(srv, jfk):
    """60 s of silent audio (sent at 20x real time) plus 8 s with no frames at all, between two speeches.

    The silence is sent faster than real time to keep the suite short: the server's behaviour
    depends on the audio it gets (VAD sees 60 s of silence) and on wall-clock time only through
    the idle timeout, which the 8 s without any frame exercises (idle timeout is 300 s).
    """
    rng = np.random.default_rng(0)
    silence = (rng.standard_normal(60 * SR) * 1e-4).astype(np.float32)  # near-silent room, not digital zero

    async def go():
        async with websockets.connect(url_for(srv.ws_url, language="en"), additional_headers=AUTH) as ws:
            received = []

            async def reader():
                async for raw in ws:
                    received.append(json.loads(raw))
                    if received[-1].get("checkpoint_id") == "final":
                        return

            task = asyncio.create_task(reader())
            for part, pace in ((jfk[: 5 * SR], 10.0), (silence, 20.0)):
                for i in range(0, len(part), 800):
                    await ws.send((part[i : i + 800] * 32767).astype("<i2").tobytes())
                    await asyncio.sleep(0.05 / pace)
            await asyncio.sleep(8.0)  # no frames at all
            await ws.send(json.dumps({"checkpoint_id": "after-silence"}))
            for i in range(5 * SR, len(jfk), 800):
                await ws.send((jfk[i : i + 800] * 32767).astype("<i2").tobytes())
                await asyncio.sleep(0.005)
            await ws.send(json.dumps({"checkpoint_id": "final"}))
            await asyncio.wait_for(task, 60)
            return received

    msgs = run(go())
    state = {}
    for m in msgs:
        for s in m.get("segments", []):
            state[s["id"]] = s
    assert [m["checkpoint_id"] for m in msgs if "checkpoint_id" in m] == ["after-silence", "final"]
    assert not any("error" in m for m in msgs)
    text = " ".join(s["text"] for _, s in sorted(state.items()))
    assert "fellow americans" in text.lower() and "your country" in text.lower().split("fellow americans")[-1]
    # nothing was transcribed inside the silence (5 s .. 65 s of stream time)
    assert not [s for s in state.values() if 6.0 < s["start"] < 64.0], state
    # the speech after the silence is placed after it on the stream's clock
    assert max(s["end"] for s in state.values()) > 65.0


def test_idle_timeout_closes_a_stream_with_no_frames(make_server, jfk):
    srv2 = make_server(stream_idle_timeout_s=1.5)

    async def go():
        async with websockets.connect(url_for(srv2.ws_url)) as ws:
            await ws.send(b"\x00\x00" * 800)
            return await expect_close(ws)

    errors, code = run(go())
    assert code == 1000 and errors[0]["code"] == "idle_timeout"


def test_memory_returns_after_twenty_sessions(srv, jfk):
    proc = psutil.Process(srv.pid)

    def one():
        r = run(stream(srv.ws_url, jfk, pace=0, headers=AUTH, params={"language": "en"}))
        assert r.checkpoints == ["final"]

    one()
    after_first = proc.memory_info().rss
    for _ in range(19):
        one()
    after_all = proc.memory_info().rss
    assert after_all <= after_first * 1.10, (after_first / 2**20, after_all / 2**20)


def test_fast_client_is_paced_not_dropped(make_server, jfk):
    """A client sending 4x jfk as fast as it can, with an 8 s backlog limit: nothing is lost, no error.

    The server stops reading while the stream holds 8 s of untranscribed audio (TCP back-pressure),
    so its memory stays bounded and every word still arrives.
    """
    srv2 = make_server(stream_max_backlog_s=8.0)
    gap = np.zeros(SR, np.float32)
    audio = np.concatenate([jfk, gap, jfk, gap, jfk, gap, jfk])
    r = run(stream(srv2.ws_url, audio, pace=0, params={"language": "en"}, timeout_s=180))
    assert not r.errors and r.checkpoints == ["final"]
    assert wer(" ".join([JFK_TEXT] * 4), r.text) <= 0.12, r.text
    check_segments(r)


def test_skip_vad_and_vad_kwargs(srv, jfk):
    """Without VAD the stream is one segment per max length / checkpoint; a long endpoint merges pauses."""
    r = run(stream(srv.ws_url, jfk, pace=0, headers=AUTH, params={"language": "en", "skip_vad": "true"}))
    assert wer(JFK_TEXT, r.text) <= 0.12 and len(r.segments) == 1
    r = run(
        stream(
            srv.ws_url,
            jfk,
            pace=0,
            headers=AUTH,
            params={"language": "en", "vad_kwargs": json.dumps({"min_silence_duration_ms": 3000})},
        )
    )
    assert wer(JFK_TEXT, r.text) <= 0.12 and len(r.segments) == 1
