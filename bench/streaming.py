"""Streaming benchmark: latency, capacity (current defaults, batching on), the WhisperLive-style lag table, long-file WER.

    python bench/streaming.py              # full run (12-15 minutes on 2 cores: capacity is searched)
    python bench/streaming.py --quick      # short version (about 3 minutes)
    python bench/streaming.py --levels 1 --runs current --no-long --out streaming_n1.json   # one stream

Starts the real server once per run (the current defaults - on a CPU, no cross-session batching -
then batching on), streams real speech from concurrent WebSocket clients at real-time pace, prints
tables, compares them with the results recorded in ``bench/results/`` (the ``--out`` file as it was
before the run, or ``--compare``: ratio = this run / recorded) and writes ``bench/results/streaming.json``
(``--out``). On a GPU: ``python bench/streaming.py --device cuda``. ``CT2_FORCE_CPU_ISA=AVX2`` measures
CTranslate2's AVX2 kernels on an AVX-512 machine (recorded in the JSON). Definitions:

- partial latency: wall time from sending the end of a word's audio to the first patch showing it;
- final latency: wall time from sending the end of a segment's speech (its last word) to the patch
  marking it final;
- commit lag: for each word of the final transcript, wall time from sending the frame holding the
  word's end to the first message sending that word final (``is_final`` on the word or its segment);
- lag (WhisperLive's measure): at each server message, seconds of audio sent minus the end time
  of the newest transcribed segment;
- capacity: the most concurrent real-time streams whose p95 final latency is <= 3 s;
- server CPU per stream-second: CPU seconds of the server process (all threads) per second of
  audio per stream. At N=1 it is what one stream costs, so ``cores / that`` compares machines
  (reported as "streams per core"); it falls with N once partial updates become coarser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import machine_info  # noqa: E402
from bench.streaming_report import CAPACITY_P95_FINAL_S, report  # noqa: E402
from tests.audio_utils import JFK, JFK_TEXT, espeak, load_16k, wer, write_wav  # noqa: E402
from tests.server import ServerProcess  # noqa: E402
from tests.stream_client import StreamResult, commit_lags, first_appearance, sent_wall, stream  # noqa: E402

SR = 16000
RESULTS = ROOT / "bench" / "results" / "streaming.json"
# Settings of each run by group (the server's environment, see tests/server.py)
RUNS: dict[str, dict[str, dict[str, object]]] = {
    "on": {"streaming": {"batching": True}},
    "off": {"streaming": {"batching": False}},
    "current": {},
}
ESPEAK_TEXTS = [
    "The weather service expects heavy rain along the northern coast tomorrow morning, with strong winds in the afternoon.",
    "Please remember to bring your identification card and a printed copy of the invoice to the front desk.",
    "Our quarterly results show steady growth in every region, and the board has approved a new research budget.",
    "The museum opens at nine o'clock on weekdays and stays open until eight in the evening on Saturdays.",
    "After the meeting, the engineers reviewed the test plan and agreed to release the update next week.",
]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def jfk_repeated(times: int, pause_s: float = 1.0) -> tuple[np.ndarray, str]:
    jfk = load_16k(JFK)
    parts, texts = [], []
    for i in range(times):
        if i:
            parts.append(silence(pause_s))
        parts.append(jfk)
        texts.append(JFK_TEXT)
    return np.concatenate(parts), " ".join(texts)


def long_file(workdir: Path) -> tuple[np.ndarray, str]:
    """>= 2 minutes: jfk (at varied gains) and espeak-ng sentences, separated by 0.8-3 s pauses."""
    jfk = load_16k(JFK)
    parts, texts = [], []
    pauses = [1.5, 3.0, 0.8, 2.0, 1.2, 2.5, 1.0, 3.0, 1.8, 0.9, 2.2, 1.4]
    for i in range(12):
        if i % 2 == 0:
            parts.append(jfk * (0.5 + 0.25 * (i % 3)))
            texts.append(JFK_TEXT)
        else:
            text = ESPEAK_TEXTS[(i // 2) % len(ESPEAK_TEXTS)]
            parts.append(load_16k(espeak(text, workdir / f"s{i}.wav", voice="en-us", speed=160)))
            texts.append(text)
        parts.append(silence(pauses[i]))
    audio = np.concatenate(parts)
    return audio, " ".join(texts)


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def analyse(r: StreamResult) -> dict:
    """Partial/final latencies, per-word commit lag and WhisperLive lag for one stream."""

    partial = [max(0.0, seen - sent_wall(r, end)) for _, end, seen in first_appearance(r)]
    final = []
    final_seen: dict[int, float] = {}
    for t, msg in r.messages:
        for seg in msg.get("segments", []):
            if seg["is_final"] and seg["id"] not in final_seen and seg["text"].strip():
                final_seen[seg["id"]] = t
                final.append(max(0.0, t - sent_wall(r, float(seg["end"]))))
    lag, newest_end = [], 0.0
    for t, msg in r.messages:
        if msg.get("segments"):
            newest_end = max([newest_end] + [float(s["end"]) for s in msg["segments"] if s["text"].strip()])
            lag.append(r.audio_sent_at(t) - newest_end)
    return {"partial": partial, "final": final, "commit": commit_lags(r), "lag": lag}


async def concurrent(ws_url: str, audio: np.ndarray, n: int, frame_ms: int) -> list[StreamResult]:
    async def one(i: int) -> StreamResult:
        await asyncio.sleep(0.05 * i)  # clients connect a little apart, as real ones do
        return await stream(ws_url, audio, frame_ms=frame_ms, pace=1.0, params={"language": "en"}, timeout_s=600)

    return await asyncio.gather(*(one(i) for i in range(n)))


def level(srv: ServerProcess, audio: np.ndarray, reference: str, n: int, frame_ms: int) -> dict:
    proc = psutil.Process(srv.pid)
    cpu0 = sum(proc.cpu_times()[:2])
    results = asyncio.run(concurrent(srv.ws_url, audio, n, frame_ms))
    cpu_s = sum(proc.cpu_times()[:2]) - cpu0
    partial, final, commit, lag, wers = [], [], [], [], []
    for r in results:
        a = analyse(r)
        partial += a["partial"]
        final += a["final"]
        commit += a["commit"]
        lag += a["lag"]
        wers.append(wer(reference, r.text))
        assert not r.final_changed, r.final_changed
    row = {
        "streams": n,
        "partial_p50": pct(partial, 50),
        "partial_p95": pct(partial, 95),
        "final_p50": pct(final, 50),
        "final_p95": pct(final, 95),
        "commit_p50": pct(commit, 50),
        "commit_p95": pct(commit, 95),
        "lag_p50": pct(lag, 50),
        "lag_p95": pct(lag, 95),
        "wer": round(float(np.mean(wers)), 4),
        "errors": sum(len(r.errors) for r in results),
        # server CPU seconds per second of audio per stream: falls with N when batching pays off
        "cpu_per_stream_audio_s": round(cpu_s / (n * len(audio) / SR), 3),
    }
    print(
        f"    N={n}: partial p50/p95 {row['partial_p50']}/{row['partial_p95']} s, final p50/p95 "
        f"{row['final_p50']}/{row['final_p95']} s, commit lag p50/p95 {row['commit_p50']}/{row['commit_p95']} s, "
        f"lag p50/p95 {row['lag_p50']}/{row['lag_p95']} s, WER {row['wer']}, "
        f"server CPU {row['cpu_per_stream_audio_s']} s per stream-audio-s",
        flush=True,
    )
    return row


def capacity(rows: dict[int, dict], probe) -> int:
    """Largest N with p95 final latency <= 3 s; probes the levels between tested ones."""

    def ok(row):
        return row["final_p95"] is not None and row["final_p95"] <= CAPACITY_P95_FINAL_S and not row["errors"]

    passing = [n for n, row in rows.items() if ok(row)]
    best = max(passing, default=0)
    failing = [n for n, row in rows.items() if not ok(row) and n > best]
    hi = min(failing, default=None)
    while hi is not None and hi - best > 1:
        mid = (best + hi) // 2
        rows[mid] = probe(mid)
        if ok(rows[mid]):
            best = mid
        else:
            hi = mid
    return best


def run_server(
    name: str, levels: list[int], extra: list[int], audio, reference, frame_ms: int, log: Path, stop_early: bool
) -> dict:
    """Measure ``levels`` (all of them unless ``stop_early``), then ``extra`` levels while p95 final <= 3 s."""
    print(f"  run {name!r} (settings {RUNS[name]}):", flush=True)

    def fails(row):
        return (row["final_p95"] or 99) > CAPACITY_P95_FINAL_S or row["errors"]

    # the per-key stream limit (default 10, one "key" on an open server) must not cap the capacity probe
    with ServerProcess(log_path=log, quotas={"max_streams_per_key": 1000}, **RUNS[name]) as srv:
        rows: dict[int, dict] = {}

        def probe(n):
            return level(srv, audio, reference, n, frame_ms)

        for n in levels:
            rows[n] = probe(n)
            if stop_early and fails(rows[n]):
                break
        if not any(fails(r) for r in rows.values()):
            for n in extra:
                rows[n] = probe(n)
                if fails(rows[n]):
                    break
        cap = capacity(rows, probe)
    # the engine's own account at shutdown: model calls and CPU by kind (final, early final, partial)
    engine = [line.split("streaming engine: ", 1)[1] for line in log.read_text().splitlines() if "streaming engine: " in line]
    if engine:
        print(f"    engine: {engine[-1]}", flush=True)
    bound = "" if any(fails(r) for r in rows.values()) else " (the most tested: a lower bound)"
    print(f"    capacity (p95 final <= {CAPACITY_P95_FINAL_S} s): {cap} streams{bound}", flush=True)
    one = rows.get(1, {}).get("cpu_per_stream_audio_s")
    return {
        "settings": RUNS[name],
        "levels": [rows[n] for n in sorted(rows)],
        "capacity": cap,
        "capacity_is_lower_bound": bool(bound),
        "cpu_per_stream_s_at_1": one,
        "engine": engine[-1] if engine else None,
        "streams_per_core": round(1 / one, 2) if one else None,
    }


def long_file_wer(
    audio: np.ndarray, reference: str, workdir: Path, pace: float, settings: dict[str, dict[str, object]], log: Path
) -> dict:
    path = write_wav(workdir / "long.wav", audio)
    with ServerProcess(log_path=log, **settings) as srv:
        t0 = time.perf_counter()
        r = asyncio.run(stream(srv.ws_url, audio, frame_ms=100, pace=pace, params={"language": "en"}, timeout_s=900))
        stream_s = time.perf_counter() - t0
        with open(path, "rb") as f:
            resp = httpx.post(
                f"{srv.base_url}/v1/audio/transcriptions",
                files={"file": ("long.wav", f, "audio/wav")},
                data={"language": "en", "response_format": "json"},
                timeout=600,
            )
        resp.raise_for_status()
    s_wer, b_wer = wer(reference, r.text), wer(reference, resp.json()["text"])
    out = {
        "duration_s": round(len(audio) / SR, 1),
        "pace": pace,
        "stream_wall_s": round(stream_s, 1),
        "streaming_wer": round(s_wer, 4),
        "batch_wer": round(b_wer, 4),
        "ratio": round(s_wer / b_wer, 3) if b_wer > 0 else (1.0 if s_wer == 0 else None),
        "final_changed": len(r.final_changed),
    }
    print(
        f"  {out['duration_s']} s file (pace {pace or 'max'}): streaming WER {out['streaming_wer']}, "
        f"batch WER {out['batch_wer']}, ratio {out['ratio']}",
        flush=True,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer levels, shorter audio (about 2 minutes)")
    ap.add_argument("--frame-ms", type=int, default=100, help="frame size for the concurrency runs (WhisperLive used 100)")
    ap.add_argument("--runs", help=f"comma-separated runs instead of current,on ({', '.join(RUNS)})")
    ap.add_argument("--levels", help="comma-separated stream counts instead of the default levels (no capacity search)")
    ap.add_argument("--no-long", action="store_true", help="skip the long-file WER")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], help="the servers' device (default: their default, auto)")
    ap.add_argument("--out", default=RESULTS.name, help=f"results file name in bench/results (default {RESULTS.name})")
    ap.add_argument("--compare", help="recorded results file in bench/results to compare with (default: the --out file)")
    args = ap.parse_args()
    out = RESULTS.parent / args.out  # an absolute path stays as it is
    recorded_path = RESULTS.parent / (args.compare or args.out)
    recorded = json.loads(recorded_path.read_text()) if recorded_path.exists() else None  # read before --out is replaced
    if args.device:
        for settings in RUNS.values():
            settings["models"] = {**settings.get("models", {}), "device": args.device}
    runs = args.runs.split(",") if args.runs else ["current", "on"]
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        audio, reference = jfk_repeated(1 if args.quick else 3, 1.0)
        levels = [int(n) for n in args.levels.split(",")] if args.levels else [1, 2, 4] if args.quick else [1, 2, 4, 8]
        print(
            f"concurrent real-time streams of jfk x{1 if args.quick else 3} (1 s pauses), {args.frame_ms} ms frames", flush=True
        )
        extra = [] if args.quick or args.levels else [12, 16, 24]
        res = {
            name: run_server(name, levels, extra, audio, reference, args.frame_ms, work / f"{i}.log", stop_early=i > 0)
            for i, name in enumerate(runs)
        }
        longf = {}
        if not args.no_long:
            long_audio, long_ref = _first_minute(work) if args.quick else long_file(work)
            pace = 0.0 if args.quick else 4.0
            longf["current"] = long_file_wer(long_audio, long_ref, work, pace, RUNS["current"], work / "long.log")
    load_after = os.getloadavg()
    results = {
        "machine": {**machine_info(), "loadavg_before": load_before, "loadavg_after": load_after},
        "quick": args.quick,
        "frame_ms": args.frame_ms,
        "audio": f"jfk x{1 if args.quick else 3} with 1 s pauses",
        "runs": res,
        "long_file": longf,
        "wall_s": round(time.perf_counter() - t_start, 1),
        "compared_with": recorded_path.name if recorded else None,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    report(res, longf, recorded, recorded_path.name)
    print(f"\nload average before {load_before}, after {load_after}; wrote {out}")


def _first_minute(work: Path) -> tuple[np.ndarray, str]:
    """The --quick long file: the first five pieces of the long file (about a minute)."""
    jfk = load_16k(JFK)
    e1 = load_16k(espeak(ESPEAK_TEXTS[0], work / "q1.wav", voice="en-us", speed=160))
    e2 = load_16k(espeak(ESPEAK_TEXTS[1], work / "q2.wav", voice="en-us", speed=160))
    audio = np.concatenate([jfk, silence(1.5), e1, silence(3.0), jfk * 0.5, silence(0.8), e2, silence(2.0), jfk])
    return audio, " ".join([JFK_TEXT, ESPEAK_TEXTS[0], JFK_TEXT, ESPEAK_TEXTS[1], JFK_TEXT])


if __name__ == "__main__":
    main()
