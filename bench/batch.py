"""Batch benchmark: service overhead vs direct faster-whisper, batched vs sequential, a 10-minute file.

    .venv/bin/python bench/batch.py            # full run (about 5 minutes on 2 cores)
    .venv/bin/python bench/batch.py --quick    # skips the 10-minute file, one run each

Prints its figures and writes bench/results/batch.json.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import httpx
from _common import JFK, RESULTS, jfk_with_pauses, machine_info, median, peak_rss_mb, save, timed, wer, write_audio

from audio_service.models.packaged import packaged_model_dir
from audio_service.settings import Settings
from tests.server import ServerProcess


def service_transcribe(srv: ServerProcess, path: Path) -> str:
    with open(path, "rb") as f:
        r = httpx.post(f"{srv.base_url}/v1/audio/transcriptions", files={"file": (path.name, f)}, timeout=3600)
    r.raise_for_status()
    return r.json()["text"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = 1 if args.quick else args.runs

    from faster_whisper import BatchedInferencePipeline, WhisperModel

    settings = Settings()
    model_dir = packaged_model_dir("whisper-base", settings.models.cache_dir)
    direct = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)

    def direct_batched(path: Path) -> str:
        segs, _ = BatchedInferencePipeline(direct).transcribe(str(path), beam_size=5, batch_size=8)
        return " ".join(s.text.strip() for s in segs)

    def direct_sequential(path: Path) -> str:
        segs, _ = direct.transcribe(str(path), beam_size=5, vad_filter=True)
        return " ".join(s.text.strip() for s in segs)

    audio60, text60 = jfk_with_pauses(4, 4.0)
    file60 = write_audio("jfk_x4_60s.wav", audio60)
    audio600, text600 = jfk_with_pauses(40, 4.0)
    file600 = write_audio("jfk_x40_600s.wav", audio600)
    from tests.audio_utils import JFK_TEXT

    results: dict = {"machine": machine_info(), "model": "whisper-base (packaged, int8)", "runs": runs}
    with ServerProcess(log_path=RESULTS / "batch-server.log") as srv:
        service_transcribe(srv, JFK)  # warm-up both sides
        direct_batched(JFK)
        overhead = {}
        for name, path, ref in (("jfk_11s", JFK, JFK_TEXT), ("jfk_x4_60s", file60, text60)):
            svc_t, dir_t = [], []
            for _ in range(runs):  # alternate so that machine noise hits both sides alike
                t, svc_text = timed(service_transcribe, srv, path)
                svc_t.append(t)
                t, dir_text = timed(direct_batched, path)
                dir_t.append(t)
            overhead[name] = {
                "service_s": round(median(svc_t), 3),
                "direct_s": round(median(dir_t), 3),
                "ratio": round(median(svc_t) / median(dir_t), 3),
                "service_wer": round(wer(ref, svc_text), 4),
                "direct_wer": round(wer(ref, dir_text), 4),
            }
            print(
                f"[overhead] {name}: service {median(svc_t):.2f}s / direct faster-whisper {median(dir_t):.2f}s"
                f" = {median(svc_t) / median(dir_t):.3f}"
            )
        results["service_vs_direct"] = overhead

        seq_t, bat_t = [], []
        for _ in range(runs):
            t, seq_text = timed(direct_sequential, file60)
            seq_t.append(t)
            t, bat_text = timed(direct_batched, file60)
            bat_t.append(t)
        results["batched_vs_sequential_60s"] = {
            "sequential_s": round(median(seq_t), 3),
            "batched_s": round(median(bat_t), 3),
            "speedup": round(median(seq_t) / median(bat_t), 3),
            "sequential_wer": round(wer(text60, seq_text), 4),
            "batched_wer": round(wer(text60, bat_text), 4),
        }
        print(
            f"[batched] 60 s file: sequential {median(seq_t):.2f}s, batched {median(bat_t):.2f}s,"
            f" speed-up {median(seq_t) / median(bat_t):.2f}x"
        )

        if not args.quick:
            rss_before = peak_rss_mb(srv.pid)
            t, text = timed(service_transcribe, srv, file600)
            results["ten_minute_file"] = {
                "audio_s": round(len(audio600) / 16000, 1),
                "wall_s": round(t, 2),
                "real_time_factor": round(t / (len(audio600) / 16000), 4),
                "server_peak_rss_mb_before": round(rss_before, 1),
                "server_peak_rss_mb_after": round(peak_rss_mb(srv.pid), 1),
                "wer": round(wer(text600, text), 4),
            }
            print(f"[10 min] {results['ten_minute_file']}")
    save("batch", results)


if __name__ == "__main__":
    main()
