"""Soak: mixed load on one real server for a long time; does memory, file descriptors or latency drift?

    python bench/soak.py                 # 30 minutes (the figures in docs/benchmarks.md)
    python bench/soak.py --minutes 5     # a quick look

Load, all on loopback against a server this script starts:
- ``--streams`` real-time streams of jfk (with trace probes) that come and go (a pause between them);
- a batch upload of jfk every 20 s, and a diarized upload of two_speakers.wav every 90 s;
- a bad request every 5 s, in turn: an empty file, undecodable bytes, a bad parameter, an unknown
  model, an odd-length WebSocket frame, a stream that vanishes mid-speech.

Every 10 s the server's RSS and open file descriptors are sampled. Reported: their slope over the run
after a warm-up (least squares, MB per hour / fds per hour), unexpected errors (a bad request that got
anything but its 4xx / close code counts too), and streaming final latency and lag at the start and
end. Writes ``bench/results/soak.json``. Not part of the test suite (it is long by design).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import JFK, JFK_TEXT, machine_info, save, wer  # noqa: E402
from bench.streaming import analyse, pct  # noqa: E402
from tests.audio_utils import TWO_SPEAKERS, load_16k  # noqa: E402
from tests.server import ServerProcess  # noqa: E402
from tests.stream_client import stream, url_for  # noqa: E402

SAMPLE_EVERY_S = 10.0
# Models (the diarizer on the first diarized upload), allocator arenas and decoder caches grow for the
# first minutes; the slope is fitted after this share of the run (at least 2 minutes).
WARMUP_SHARE = 1 / 3


class Soak:
    """The load generators and what they saw."""

    def __init__(self, srv: ServerProcess, deadline: float) -> None:
        self.srv = srv
        self.deadline = deadline
        self.t0 = time.monotonic()
        self.jfk = load_16k(JFK)
        self.samples: list[dict] = []
        self.stream_runs: list[dict] = []
        self.batch_runs: list[dict] = []
        self.bad_runs: list[dict] = []
        self.errors: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def sampler(self) -> None:
        proc = psutil.Process(self.srv.pid)
        while self.running():
            rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
            self.samples.append({"t": round(self.now(), 1), "rss_mb": round(rss / 2**20, 1), "fds": proc.num_fds()})
            await asyncio.sleep(SAMPLE_EVERY_S)

    async def streams(self, i: int) -> None:
        await asyncio.sleep(3.0 * i)
        while self.running():
            started = self.now()
            try:
                r = await stream(self.srv.ws_url, self.jfk, frame_ms=100, pace=1.0, params={"language": "en"}, trace_every_s=1.0)
                a = analyse(r)
                run = {"t": round(started, 1), "wer": round(wer(JFK_TEXT, r.text), 3), "final": a["final"], "lag": a["lag"]}
                if r.errors or r.final_changed or run["wer"] > 0.15:
                    self.errors.append(f"stream at {started:.0f}s: wer {run['wer']}, errors {r.errors}, {r.final_changed}")
                self.stream_runs.append(run)
            except Exception as exc:  # noqa: BLE001 - a soak counts every failure, whatever its type
                self.errors.append(f"stream at {started:.0f}s: {exc!r}")
            await asyncio.sleep(random.uniform(1.0, 4.0))

    async def batch(self, client: httpx.AsyncClient) -> None:
        jfk_bytes, two = JFK.read_bytes(), TWO_SPEAKERS.read_bytes()
        k = 0
        while self.running():
            diarized = k % 4 == 3  # every 4th of the 20 s ticks is (about) every 90 s
            files = {"file": ("two.wav", two, "audio/wav")} if diarized else {"file": ("jfk.flac", jfk_bytes, "audio/flac")}
            data = {"response_format": "verbose_json", "timestamp_granularities[]": "word", "diarize": "true"} if diarized else {}
            started = self.now()
            t = time.perf_counter()
            try:
                r = await client.post("/v1/audio/transcriptions", files=files, data=data, timeout=300)
                ok = r.status_code == 200 and (diarized or wer(JFK_TEXT, r.json()["text"]) <= 0.1)
                if not ok:
                    self.errors.append(f"batch at {started:.0f}s: {r.status_code} {r.text[:200]}")
            except Exception as exc:  # noqa: BLE001
                self.errors.append(f"batch at {started:.0f}s: {exc!r}")
            self.batch_runs.append({"t": round(started, 1), "diarized": diarized, "s": round(time.perf_counter() - t, 2)})
            k += 1
            await asyncio.sleep(max(0.0, 20.0 - (time.perf_counter() - t)))

    async def bad(self, client: httpx.AsyncClient) -> None:
        kinds = [self._empty_file, self._garbage, self._bad_param, self._unknown_model, self._odd_frame, self._vanish]
        k = 0
        while self.running():
            kind = kinds[k % len(kinds)]
            try:
                expected = await kind(client)
            except Exception as exc:  # noqa: BLE001
                expected = False
                self.errors.append(f"bad request {kind.__name__}: {exc!r}")
            if not expected:
                self.errors.append(f"bad request {kind.__name__} was not answered as documented")
            self.bad_runs.append({"t": round(self.now(), 1), "kind": kind.__name__, "as_documented": expected})
            k += 1
            await asyncio.sleep(5.0)

    async def _empty_file(self, client: httpx.AsyncClient) -> bool:
        r = await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"", "audio/wav")})
        return r.status_code == 400 and "error" in r.json()

    async def _garbage(self, client: httpx.AsyncClient) -> bool:
        r = await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", random.randbytes(5000), "audio/wav")})
        return r.status_code == 400 and "error" in r.json()

    async def _bad_param(self, client: httpx.AsyncClient) -> bool:
        r = await client.post(
            "/v1/audio/transcriptions", files={"file": ("j.flac", b"x", "audio/flac")}, data={"temperature": "hot"}
        )
        return r.status_code == 400 and r.json()["error"]["param"] == "temperature"

    async def _unknown_model(self, client: httpx.AsyncClient) -> bool:
        r = await client.post("/v1/audio/transcriptions", files={"file": ("j.flac", b"x", "audio/flac")}, data={"model": "nope"})
        return r.status_code == 404

    async def _odd_frame(self, client: httpx.AsyncClient) -> bool:
        async with websockets.connect(url_for(self.srv.ws_url)) as ws:
            await ws.send(b"\x00\x01\x02")
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as closed:
                return closed.rcvd is not None and closed.rcvd.code == 1007

    async def _vanish(self, client: httpx.AsyncClient) -> bool:
        ws = await websockets.connect(url_for(self.srv.ws_url, language="en"))
        pcm = (self.jfk[: 16000 * 3] * 32767).astype("<i2").tobytes()
        for i in range(0, len(pcm), 3200):
            await ws.send(pcm[i : i + 3200])
        ws.transport.abort()  # no close frame: the client is simply gone
        return True


def slope_per_hour(samples: list[dict], key: str) -> float | None:
    warmup = max(120.0, samples[-1]["t"] * WARMUP_SHARE) if samples else 0.0
    pts = [(s["t"], s[key]) for s in samples if s["t"] >= warmup]
    if len(pts) < 3:
        return None
    t, y = np.array(pts, dtype=float).T
    return round(float(np.polyfit(t, y, 1)[0]) * 3600, 2)


def window(runs: list[dict], lo: float, hi: float, key: str) -> list[float]:
    return [x for r in runs if lo <= r["t"] < hi for x in r[key]]


def report(soak: Soak, minutes: float) -> dict:
    end = soak.now()
    edge = min(300.0, end / 3)
    first_final, last_final = window(soak.stream_runs, 0, edge, "final"), window(soak.stream_runs, end - edge, end, "final")
    first_lag, last_lag = window(soak.stream_runs, 0, edge, "lag"), window(soak.stream_runs, end - edge, end, "lag")
    rss = [s["rss_mb"] for s in soak.samples]
    return {
        "machine": machine_info(),
        "minutes": minutes,
        "streams_finished": len(soak.stream_runs),
        "batch_requests": len(soak.batch_runs),
        "bad_requests": len(soak.bad_runs),
        "unexpected_errors": soak.errors,
        "rss_mb": {
            "start": rss[0] if rss else None,
            "max": max(rss, default=None),
            "end": rss[-1] if rss else None,
            "slope_mb_per_hour_after_warmup": slope_per_hour(soak.samples, "rss_mb"),
        },
        "fds": {
            "start": soak.samples[0]["fds"] if soak.samples else None,
            "end": soak.samples[-1]["fds"] if soak.samples else None,
            "slope_per_hour_after_warmup": slope_per_hour(soak.samples, "fds"),
        },
        "final_latency_s": {
            "first_p50": pct(first_final, 50),
            "first_p95": pct(first_final, 95),
            "last_p50": pct(last_final, 50),
            "last_p95": pct(last_final, 95),
        },
        "lag_s": {
            "first_p50": pct(first_lag, 50),
            "first_p95": pct(first_lag, 95),
            "last_p50": pct(last_lag, 50),
            "last_p95": pct(last_lag, 95),
        },
        "samples": soak.samples,
    }


async def run(srv: ServerProcess, minutes: float, n_streams: int) -> Soak:
    soak = Soak(srv, time.monotonic() + minutes * 60)
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=120) as client:
        await asyncio.gather(soak.sampler(), soak.batch(client), soak.bad(client), *(soak.streams(i) for i in range(n_streams)))
    return soak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--streams", type=int, default=2, help="concurrent real-time streams that come and go")
    args = ap.parse_args()
    random.seed(7)
    log = ROOT / "bench" / "results" / "soak_server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with ServerProcess(log_path=log) as srv:
        soak = asyncio.run(run(srv, args.minutes, args.streams))
    result = report(soak, args.minutes)
    save("soak", result)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))


if __name__ == "__main__":
    main()
