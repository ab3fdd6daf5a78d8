"""Graceful drain on SIGTERM, on a real server process with a long batch request and live streams."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import httpx
import websockets

from tests.audio_utils import JFK, JFK_TEXT, english_reading, load_16k, normalize, wer, write_wav
from tests.ops_utils import scrape, value, wait_for
from tests.server import ServerProcess
from tests.stream_client import expect_close, stream, url_for

SR = 16000


def test_sigterm_drains_batch_and_streams_then_exits_0(tmp_path) -> None:
    jfk = load_16k(JFK)
    # 44 s: still being transcribed when SIGTERM comes (asserted through busy_workers below)
    reading, reading_text = english_reading(pause_s=2.0, recordings=2)
    long_wav = write_wav(tmp_path / "reading.wav", reading)
    srv = ServerProcess(log_path=tmp_path / "server.log", server={"shutdown_grace_s": 150}).start()
    try:
        batch: dict = {}
        sigterm_at: list[float] = []

        def post() -> None:
            with long_wav.open("rb") as f:
                batch["r"] = httpx.post(
                    srv.base_url + "/v1/audio/transcriptions",
                    files={"file": ("reading.wav", f, "audio/wav")},
                    data={"language": "en"},
                    timeout=300,
                )

        async def scenario():
            streams = [
                asyncio.create_task(stream(srv.ws_url, jfk, pace=1.0, params={"language": "en"}, timeout_s=200)) for _ in range(3)
            ]
            # streams are live and the batch request runs on a worker: now SIGTERM
            # each stream has sent ~4 s (real-time pace) before the batch request starts
            streamed = lambda: value(scrape(srv), "audio_service_audio_seconds_total", mode="streaming", model="whisper-base")  # noqa: E731
            await asyncio.to_thread(wait_for, lambda: streamed() >= 3 * 4.0)
            worker = threading.Thread(target=post)
            worker.start()
            await asyncio.to_thread(wait_for, lambda: value(scrape(srv), "audio_service_busy_workers") == 1)
            sigterm_at.append(time.perf_counter())
            srv.proc.send_signal(signal.SIGTERM)
            ready = await asyncio.to_thread(httpx.get, srv.base_url + "/ready", timeout=10)
            refused = await asyncio.to_thread(httpx.get, srv.base_url + "/v1/models", timeout=10)
            async with websockets.connect(url_for(srv.ws_url)) as ws:
                late_stream = await expect_close(ws)
            results = await asyncio.gather(*streams)
            await asyncio.to_thread(worker.join, 300)
            return ready, refused, late_stream, results

        ready, refused, (late_errors, late_code), results = asyncio.run(scenario())
        assert srv.proc.wait(timeout=120) == 0
    finally:
        srv.stop()

    assert ready.status_code == 503 and ready.json()["error"]["code"] == "server_shutting_down"
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "server_shutting_down"
    assert late_code == 1012 and late_errors[-1]["code"] == "server_shutting_down"
    r = batch["r"]
    assert r.status_code == 200, r.text
    assert wer(reading_text, r.json()["text"]) <= 0.1
    reference = normalize(JFK_TEXT).split()
    for res in results:
        assert res.close_code == 1012, (res.close_code, res.errors)
        assert res.errors[-1]["code"] == "server_shutting_down"
        assert res.segments and res.all_final and not res.final_changed
        # every message carrying segments came before the error: all finals were sent, then the close
        last_segments = max(i for i, (_, m) in enumerate(res.messages) if "segments" in m)
        assert last_segments < max(i for i, (_, m) in enumerate(res.messages) if "error" in m)
        words = normalize(res.text).split()
        assert words and words[0] == reference[0], res.text
        # the audio the server had before SIGTERM was transcribed, not dropped (jfk's pauses are < 1.5 s)
        sent_before = res.audio_sent_at(sigterm_at[0] - res.t0)
        assert max(seg["end"] for seg in res.segments.values()) >= min(sent_before, 10.5) - 2.0, (sent_before, res.text)
