"""Helpers shared by the benchmark scripts: building long test audio, timing, writing results."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.audio_utils import JFK, JFK_TEXT, load_16k, wer, write_wav  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def jfk_with_pauses(repeats: int, pause_s: float, lead_s: float = 0.0) -> tuple[np.ndarray, str]:
    """JFK's sentence ``repeats`` times with pauses between: real speech with a known transcript."""
    speech = load_16k(JFK)
    pause = np.zeros(int(pause_s * 16000), np.float32)
    parts = [np.zeros(int(lead_s * 16000), np.float32)]
    for _ in range(repeats):
        parts += [speech, pause]
    return np.concatenate(parts), " ".join([JFK_TEXT] * repeats)


def write_audio(name: str, samples: np.ndarray) -> Path:
    path = RESULTS / "audio" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_wav(path, samples)


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    print(f"wrote {path}")
    return path


def machine_info() -> dict:
    """The CPU a figure came from: model, cores and the ISA flags that change int8 speed (and results)."""
    import os
    import platform

    model, flags = platform.processor() or "unknown", set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name") and model in ("unknown", ""):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f in flags]
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "isa": isa,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # when the figures were taken (docs/benchmarks.md shows it)
    # CTranslate2 picks its kernels by ISA; CT2_FORCE_CPU_ISA=AVX2 on an AVX-512 machine gives the
    # AVX2 class's int8 kernels (not its clock or caches): recorded so such figures are never mistaken
    if os.environ.get("CT2_FORCE_CPU_ISA"):
        info["ct2_forced_isa"] = os.environ["CT2_FORCE_CPU_ISA"]
    return info


def peak_rss_mb(pid: int) -> float:
    """The process's RSS high-water mark (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


__all__ = [
    "JFK",
    "JFK_TEXT",
    "ROOT",
    "jfk_with_pauses",
    "machine_info",
    "median",
    "peak_rss_mb",
    "save",
    "timed",
    "wer",
    "write_audio",
]
