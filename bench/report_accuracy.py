"""Turn bench/results/accuracy.json into Markdown and put it in docs/benchmarks.md.

    python bench/report_accuracy.py                 # (re)writes the "Accuracy on real recordings" section
    python bench/report_accuracy.py --print         # only prints the Markdown

The section runs from its heading to the next ``## `` heading; the rest of docs/benchmarks.md is kept
(``scripts/benchmarks_page.py`` writes the whole page, this section included, from bench/results/*.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import RESULTS  # noqa: E402

HEADING = "## Accuracy on real recordings"
DOCS = ROOT / "docs" / "benchmarks.md"


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(data: dict) -> str:
    systems, summary, m = data["systems"], data["summary"], data["machine"]
    isa = ", ".join(m["isa"]) or "none of AVX2/AVX-512"
    forced = f", CT2 ISA forced to {m['ct2_forced_isa']}" if m.get("ct2_forced_isa") else ""
    out = [
        HEADING,
        "",
        f"`{data.get('command', 'python bench/accuracy.py')}` ({data['date']}; {m['cpu']}, {m['cores']} cores, ISA {isa},"
        f" load average {' / '.join(str(x) for x in m['loadavg'])}{forced}):"
        f" {data['model']}, {data['compute_type']}, {data['cpu_threads']} threads, language detected (not given),"
        f" streaming at {data['stream_speed']:g}x real time in 100 ms frames. WER normalised with {data['normaliser']},"
        " summed over a set as total errors / total reference words. Long files (built by joining the recordings) are"
        " summarised apart, so the per-language rows count each recording once.",
        "",
    ]
    rows = []
    for group, per in summary["wer"].items():
        cells = [f"{_f(per[s]['wer'])} ({per[s]['errors']}/{per[s]['ref_words']})" if per.get(s) else "-" for s in systems]
        files = max((per[s]["files"] for s in systems if per.get(s)), default=0)
        rows.append([group, str(files), *cells])
    rows.append(["time / audio second", "", *(_f(summary["time_per_audio_s"][s], 4) for s in systems)])
    rows.append(["language-ID accuracy", "", *(_f(summary["language_id_accuracy"][s]) for s in systems)])
    out += _table(["corpus WER (errors / words)", "files", *systems], rows) + [""]
    if summary["time_ratio"]:
        long = summary.get("time_ratio_long") or {}
        out += _table(
            ["time ratio", "the set's recordings", "built long files"],
            [[k, _f(v), _f(long.get(k))] for k, v in summary["time_ratio"].items()],
        ) + [""]
    worse = {k: v for k, v in summary["service_worse"].items() if v}
    out.append(
        "Files where the service's WER exceeds the engine's by more than 0.01: "
        + ("; ".join(f"{k}: {len(v)} ({', '.join(v)})" for k, v in worse.items()) if worse else "none.")
    )
    out.append("")
    per_file = [
        [
            f["file"],
            f["language"],
            _f(f["seconds"], 1),
            *(
                f"{_f(f['systems'][s]['wer'])} {f['systems'][s]['language'] or ''}".strip() if s in f["systems"] else "-"
                for s in systems
            ),
            ", ".join(f"{k} {_f(v, 2)}" for k, v in f["time_ratio"].items()),
            ", ".join(
                f"{k} {_f(x['segment_language_match'], 2)}"
                for k, x in f["systems"].items()
                if x["segment_language_match"] is not None
            )
            or "-",
            ", ".join(f"{k} {x['repeated']}" for k, x in f["systems"].items() if x.get("repeated") is not None) or "-",
        ]
        for f in data["files"]
    ]
    out += _table(
        [
            "file",
            "lang",
            "s",
            *(f"{s} WER, language" for s in systems),
            "time ratios",
            "segment-language match",
            "segments repeated",
        ],
        per_file,
    )
    if data["meetings"]:
        collar = data["meetings"][0]["collar_s"]
        out += [
            "",
            f"Meetings, batch endpoint with `diarize=true` (pyannote.metrics DER, collar {collar} s, overlap scored; "
            "hypothesis = speaker turns read off the returned words):",
            "",
        ]
        out += _table(
            [
                "file",
                "DER",
                "confusion s",
                "missed s",
                "false alarm s",
                "scored s",
                "speakers found / reference",
                "segments repeated",
                "cpWER",
            ],
            [
                [
                    x["file"],
                    _f(x["der"]),
                    _f(x["confusion_s"], 2),
                    _f(x["missed_s"], 2),
                    _f(x["false_alarm_s"], 2),
                    _f(x["total_s"], 2),
                    f"{x['speakers_found']} / {x['speakers_reference']}",
                    str(x.get("segments_repeated", "-")),
                    _f(x["cpwer"]["cpwer"]) if x["cpwer"] else "no speaker-attributed reference",
                ]
                for x in data["meetings"]
            ],
        )
    return "\n".join(out) + "\n"


def replace_section(document: str, section: str) -> str:
    """``document`` with its accuracy section replaced by ``section`` (appended when it has none)."""
    lines = document.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == HEADING), None)
    if start is None:
        return document.rstrip("\n") + ("\n\n" if document.strip() else "") + section
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    rest = "".join(lines[end:])
    return "".join(lines[:start]) + section + ("\n" + rest if rest else "")


def main() -> None:
    ap = argparse.ArgumentParser(description="Markdown of bench/results/accuracy.json, into docs/benchmarks.md")
    ap.add_argument("--in", dest="src", type=Path, default=RESULTS / "accuracy.json")
    ap.add_argument("--docs", type=Path, default=DOCS)
    ap.add_argument("--print", action="store_true", help="print only, do not write --docs")
    args = ap.parse_args()
    section = markdown(json.loads(args.src.read_text()))
    print(section)
    if not args.print:
        document = (
            args.docs.read_text() if args.docs.exists() else "# Benchmarks\n\nThe whole page: python scripts/benchmarks_page.py\n"
        )
        args.docs.write_text(replace_section(document, section))
        print(f"wrote {args.docs}")


if __name__ == "__main__":
    main()
