"""The tables ``bench/streaming.py`` prints (Markdown)."""

from __future__ import annotations

CAPACITY_P95_FINAL_S = 3.0


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join("-" if v is None else str(v) for v in r) + " |")


def report(res: dict[str, dict], longf: dict[str, dict]) -> None:
    """The tables: latency and lag per run, CPU per stream-second side by side, capacity, long file."""

    def at(name, n, key):
        return next((r[key] for r in res[name]["levels"] if r["streams"] == n), None)

    for name, run in res.items():
        table(
            f"Latency and lag, run {name!r} (seconds)",
            ["N", "partial p50 / p95", "final p50 / p95", "lag p50 / p95", "WER"],
            [
                [
                    r["streams"],
                    f"{r['partial_p50']} / {r['partial_p95']}",
                    f"{r['final_p50']} / {r['final_p95']}",
                    f"{r['lag_p50']} / {r['lag_p95']}",
                    r["wer"],
                ]
                for r in run["levels"]
            ],
        )
    ns = sorted({r["streams"] for run in res.values() for r in run["levels"]})
    names = list(res)
    base = "current" if "current" in res else "on"
    ratio = "previous" in res and base in res
    table(
        "Server CPU seconds per second of audio per stream" + (f" (ratio = {base} / previous)" if ratio else ""),
        ["N", *names] + (["ratio"] if ratio else []),
        [
            [n, *[at(m, n, "cpu_per_stream_audio_s") for m in names]]
            + ([_ratio(at(base, n, "cpu_per_stream_audio_s"), at("previous", n, "cpu_per_stream_audio_s"))] if ratio else [])
            for n in ns
        ],
    )
    table(
        f"Capacity (p95 final <= {CAPACITY_P95_FINAL_S} s) and one stream's cost",
        ["run", "streams", "CPU-s per stream-s at N=1", "streams per core", "levels (N: final p95)"],
        [
            [
                name,
                f"{'>= ' if run['capacity_is_lower_bound'] else ''}{run['capacity']}",
                run["cpu_per_stream_s_at_1"],
                run["streams_per_core"],
                ", ".join(f"{r['streams']}: {r['final_p95']}" for r in run["levels"]),
            ]
            for name, run in res.items()
        ],
    )
    if longf:
        table(
            "Long file",
            ["run", "duration", "pace", "streaming WER", "batch WER", "ratio"],
            [[name, f["duration_s"], f["pace"], f["streaming_wer"], f["batch_wer"], f["ratio"]] for name, f in longf.items()],
        )


def _ratio(a, b):
    return round(a / b, 3) if a is not None and b else None
