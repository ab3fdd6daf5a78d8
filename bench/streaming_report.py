"""The tables ``bench/streaming.py`` prints (Markdown)."""

from __future__ import annotations

CAPACITY_P95_FINAL_S = 3.0


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join("-" if v is None else str(v) for v in r) + " |")


def report(res: dict[str, dict], longf: dict[str, dict], recorded: dict | None = None, recorded_name: str = "") -> None:
    """The tables: latency and lag per run, CPU per stream-second, capacity, long file; each beside the
    same run in ``recorded`` (results of an earlier run, from bench/results) where it has one."""
    old = (recorded or {}).get("runs", {})
    same = [name for name in res if name in old]
    recorded_at = f" (recorded: bench/results/{recorded_name})" if same else ""

    def at(runs, name, n, key):
        return next((r[key] for r in runs[name]["levels"] if r["streams"] == n), None)

    for name, run in res.items():
        table(
            f"Latency and lag, run {name!r} (seconds)",
            ["N", "partial p50 / p95", "final p50 / p95", "commit lag p50 / p95", "lag p50 / p95", "WER"],
            [
                [
                    r["streams"],
                    f"{r['partial_p50']} / {r['partial_p95']}",
                    f"{r['final_p50']} / {r['final_p95']}",
                    f"{r.get('commit_p50')} / {r.get('commit_p95')}",
                    f"{r['lag_p50']} / {r['lag_p95']}",
                    r["wer"],
                ]
                for r in run["levels"]
            ],
        )
    ns = sorted({r["streams"] for run in res.values() for r in run["levels"]})
    key = "cpu_per_stream_audio_s"
    table(
        "Server CPU seconds per second of audio per stream"
        + (recorded_at[:-1] + "; ratio = this run / recorded)" if same else ""),
        ["N", *res, *[f"{m} recorded" for m in same], *[f"{m} ratio" for m in same]],
        [
            [n, *[at(res, m, n, key) for m in res]]
            + [at(old, m, n, key) for m in same]
            + [_ratio(at(res, m, n, key), at(old, m, n, key)) for m in same]
            for n in ns
        ],
    )
    table(
        f"Capacity (p95 final <= {CAPACITY_P95_FINAL_S} s) and one stream's cost" + recorded_at,
        ["run", "streams", "CPU-s per stream-s at N=1", "streams per core", "levels (N: final p95)"],
        [
            [
                label,
                f"{'>= ' if run['capacity_is_lower_bound'] else ''}{run['capacity']}",
                run["cpu_per_stream_s_at_1"],
                run["streams_per_core"],
                ", ".join(f"{r['streams']}: {r['final_p95']}" for r in run["levels"]),
            ]
            for label, run in [*res.items(), *[(f"{m} recorded", old[m]) for m in same]]
        ],
    )
    old_long = (recorded or {}).get("long_file") or {}
    rows = [*longf.items(), *[(f"{m} recorded", old_long[m]) for m in longf if m in old_long]]
    if rows:
        table(
            "Long file",
            ["run", "duration", "pace", "streaming WER", "batch WER", "ratio"],
            [[name, f["duration_s"], f["pace"], f["streaming_wer"], f["batch_wer"], f["ratio"]] for name, f in rows],
        )


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None
