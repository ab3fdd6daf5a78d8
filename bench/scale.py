"""Scale-out benchmark: the single-process server vs Ray Serve with 1 and 2 replicas (not run in CI).

    python bench/scale.py            # full run: a 10-minute file, 8 x 60 s concurrent requests
    python bench/scale.py --quick    # a 4-minute file, 8 x jfk, fewer streaming levels

Every server has one inference thread per replica (``models.cpu_threads=1``, ``batch.workers=1``), so
1 -> 2 replicas doubles the compute given to the service. Figures (each also as a 2-replica / 1-replica
ratio), written to ``bench/results/scale.json`` with the machine:

- batch throughput: audio seconds transcribed per wall second under 8 concurrent requests;
- fan-out latency: wall time of one long file (``ray.fanout_block_s`` blocks spread over the replicas);
- Ray overhead: median jfk latency through Ray Serve (1 replica) / the single-process server;
- streaming capacity: most concurrent real-time streams with p95 final latency <= 3 s (bench/streaming.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import JFK, jfk_with_pauses, machine_info, median, save, timed, wer, write_audio  # noqa: E402
from bench.streaming import capacity, jfk_repeated, level  # noqa: E402
from tests.server import ServerProcess  # noqa: E402

SR = 16000
FANOUT_BLOCK_S = 120.0


def post(srv: ServerProcess, path: Path) -> dict:
    with open(path, "rb") as f:
        r = httpx.post(
            f"{srv.base_url}/v1/audio/transcriptions", files={"file": (path.name, f)}, data={"language": "en"}, timeout=3600
        )
    r.raise_for_status()
    return {"text": r.json()["text"], "workers": r.headers.get("x-audio-service-block-workers", "")}


def start(log: Path, replicas: int | None) -> ServerProcess:
    """The single-process server (``replicas=None``) or ``serve --ray.enabled --ray.replicas N``, all replicas up."""
    ray = {} if replicas is None else {"ray": {"enabled": "true", "replicas": replicas, "fanout_block_s": FANOUT_BLOCK_S}}
    srv = ServerProcess(
        log_path=log,
        extra_env={"RAY_USAGE_STATS_ENABLED": "0"},
        models={"cpu_threads": 1},  # one inference thread per replica
        batch={"workers": 1, "max_queued_requests": 64},
        quotas={"max_streams_per_key": 1000},
        **ray,
    )
    srv.start(timeout=600)
    deadline = time.monotonic() + 600
    while replicas and "serving audio-service" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Ray deployment did not come up; see {log}")
        time.sleep(0.5)
    return srv


def jfk_latency(srv: ServerProcess, runs: int) -> float:
    post(srv, JFK)  # warm-up
    return round(median([timed(post, srv, JFK)[0] for _ in range(runs)]), 3)


def throughput(srv: ServerProcess, path: Path, audio_s: float, n: int = 8) -> float:
    with ThreadPoolExecutor(n) as pool:
        wall, _ = timed(lambda: list(pool.map(lambda _: post(srv, path), range(n))))
    return round(n * audio_s / wall, 3)


def long_latency(srv: ServerProcess, path: Path, reference: str) -> dict:
    wall, out = timed(post, srv, path)
    return {"wall_s": round(wall, 1), "wer": round(wer(reference, out["text"]), 4), "block_workers": out["workers"]}


def stream_capacity(srv: ServerProcess, levels: list[int]) -> dict:
    audio, reference = jfk_repeated(1, 1.0)
    rows: dict[int, dict] = {}
    for n in levels:
        rows[n] = level(srv, audio, reference, n, 100)
        if (rows[n]["final_p95"] or 99) > 3.0 or rows[n]["errors"]:
            break
    found = capacity(rows, lambda n: level(srv, audio, reference, n, 100))
    # the server's process is the Ray driver here, not the replicas: its CPU time says nothing
    return {
        "capacity": found,
        "capped": found == max(levels),
        "levels": [{k: v for k, v in rows[n].items() if k != "cpu_per_stream_audio_s"} for n in sorted(rows)],
    }


def measure(name: str, replicas: int | None, files: dict, args, work: Path) -> dict:
    print(f"== {name}", flush=True)
    srv = start(work / f"{name}.log", replicas)
    try:
        out = {"jfk_latency_s": jfk_latency(srv, 3 if args.quick else 7)}
        print(f"  jfk latency {out['jfk_latency_s']} s", flush=True)
        if replicas is None:
            return out
        out["throughput_audio_s_per_s"] = throughput(srv, *files["concurrent"])
        print(f"  throughput (8 concurrent) {out['throughput_audio_s_per_s']} audio s/s", flush=True)
        out["long_file"] = long_latency(srv, *files["long"])
        print(f"  long file {out['long_file']}", flush=True)
        out["streams"] = stream_capacity(srv, [2, 4, 6] if args.quick else [2, 4, 8, 12, 16, 24, 32])
        print(f"  streaming capacity {out['streams']['capacity']}", flush=True)
        return out
    finally:
        srv.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter files, fewer levels")
    args = ap.parse_args()
    t0, load_before = time.perf_counter(), os.getloadavg()
    long_audio, long_text = jfk_with_pauses(16 if args.quick else 40, 4.0)  # 4 or 10 minutes
    concurrent, _ = jfk_with_pauses(1 if args.quick else 5, 1.0)
    files = {
        "long": (write_audio(f"jfk_x{16 if args.quick else 40}_pauses.wav", long_audio), long_text),
        "concurrent": (write_audio("jfk_concurrent.wav", concurrent), len(concurrent) / SR),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        single = measure("single-process", None, files, args, work)
        one = measure("ray-1-replica", 1, files, args, work)
        two = measure("ray-2-replicas", 2, files, args, work)
    ratios = {
        "throughput_2_over_1": round(two["throughput_audio_s_per_s"] / one["throughput_audio_s_per_s"], 3),
        "long_file_latency_1_over_2": round(one["long_file"]["wall_s"] / two["long_file"]["wall_s"], 3),
        "jfk_latency_ray_over_single": round(one["jfk_latency_s"] / single["jfk_latency_s"], 3),
        "stream_capacity_2_over_1": round(two["streams"]["capacity"] / max(1, one["streams"]["capacity"]), 3),
    }
    results = {
        "machine": {**machine_info(), "loadavg_before": [round(x, 2) for x in load_before]},
        "quick": args.quick,
        "fanout_block_s": FANOUT_BLOCK_S,
        "long_file_s": round(len(long_audio) / SR, 1),
        "concurrent_file_s": round(len(concurrent) / SR, 1),
        "single_process": single,
        "ray_1_replica": one,
        "ray_2_replicas": two,
        "ratios": ratios,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    save("scale", results)
    print(f"ratios: {ratios}; load average before {load_before}, after {os.getloadavg()}")


if __name__ == "__main__":
    main()
