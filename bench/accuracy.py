"""Accuracy benchmark: normalised WER of the service (batch and streaming endpoints) vs faster-whisper run directly.

    python bench/accuracy.py                              # full run: realspeech + jfk, long files, meetings
    python bench/accuracy.py --files 3 --no-long          # quick check on the first 3 files
    python bench/accuracy.py --manifest my.tsv --systems batch,engine_seq
    python bench/accuracy.py --dir recordings/ --language de --match 'de_*'

Four systems on the same files, same model directory (packaged whisper-base), int8 on CPU, every core,
``language`` unset so detection is measured too:

- ``batch``: ``POST /v1/audio/transcriptions`` of a real server (``response_format=verbose_json``);
- ``stream``: the WebSocket endpoint, 100 ms PCM16 frames at ``--stream-speed`` x real time, final text =
  the final segments in id order after the ``final`` checkpoint;
- ``engine_seq``: ``WhisperModel.transcribe(path, beam_size=5, vad_filter=True)``;
- ``engine_batched``: ``BatchedInferencePipeline(model).transcribe(path, beam_size=5, batch_size=8)``.

WER is normalised with whisper-normalizer (English normaliser for ``en``, the basic one otherwise and for
the code-switching file) and summed over a set as total errors / total reference words (corpus WER).
Long files built from the same recordings (``--long``) exercise window joins; they are reported apart
from the per-language figures so the same speech is not counted twice. Meetings (``--meetings``) are
scored for diarization (DER, pyannote.metrics) through the batch endpoint.
Writes ``bench/results/accuracy.json`` (``--out``); ``bench/report_accuracy.py`` turns it into Markdown.

This module holds the pure parts (inputs, scoring, aggregation, printing) so tests import it without
loading models; the systems themselves run in ``bench/accuracy_systems.py``.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import JFK, JFK_TEXT, RESULTS  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
DEFAULT_MANIFEST = DATA / "realspeech" / "manifest.tsv"
SYSTEMS = ("batch", "stream", "engine_seq", "engine_batched")
SERVICE_SYSTEMS = ("batch", "stream")
ENGINE_SYSTEMS = ("engine_seq", "engine_batched")
MIXED = "mixed"  # the code-switching file's language: scored with the basic normaliser
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm"}
WORSE_MARGIN = 0.01  # a service WER this far above the engine's counts as a regression
SR = 16000


@dataclass(frozen=True)
class Span:
    """A stretch of audio and its language: a joined clip of a built file, or a returned segment."""

    start: float
    end: float
    language: str | None
    text: str = ""  # a returned segment's text


@dataclass(frozen=True)
class Clip:
    name: str
    path: Path
    language: str  # ISO 639-1 code, or MIXED
    reference: str
    seconds: float | None = None  # None: measured when the audio is loaded
    long: bool = False  # a built long file (reported apart from the per-language figures)
    spans: tuple[Span, ...] = ()  # built files: where each joined clip lies, for segment language checks


@dataclass(frozen=True)
class Output:
    """One system's answer on one file."""

    text: str
    language: str | None  # detected language (None: the system does not report one)
    time_s: float
    segments: tuple[Span, ...] = ()


@dataclass(frozen=True)
class Score:
    errors: int
    ref_words: int

    @property
    def wer(self) -> float:
        return self.errors / self.ref_words if self.ref_words else float(self.errors > 0)


@dataclass(frozen=True)
class SystemRow:
    wer: float
    errors: int
    ref_words: int
    language: str | None
    time_s: float
    segment_language_match: float | None = None  # built files: share of segments in the clip's language
    text: str = ""  # the hypothesis as returned: to see what an error was
    repeated: int | None = None  # segments whose text another segment says again over the same time


@dataclass(frozen=True)
class FileRow:
    file: str
    language: str
    seconds: float
    long: bool
    systems: dict[str, SystemRow] = field(default_factory=dict)


# ---- inputs -------------------------------------------------------------------------------------


def read_manifest(path: Path) -> list[Clip]:
    """Clips of a TSV manifest (columns ``file``, ``language``, ``reference_text``; ``seconds`` optional),
    audio paths relative to the manifest's directory."""
    with open(path, newline="", encoding="utf-8") as f:
        # QUOTE_NONE: references are raw text, a quote character in one must not swallow the next rows
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    missing = {"file", "language", "reference_text"} - set(rows[0] if rows else {})
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return [
        Clip(
            name=Path(r["file"]).stem,
            path=path.parent / r["file"],
            language=r["language"].strip(),
            reference=r["reference_text"].strip(),
            seconds=float(r["seconds"]) if r.get("seconds") else None,
        )
        for r in rows
    ]


def language_from_name(name: str) -> str | None:
    """``de_fleurs_001.wav`` -> ``de``: the realspeech naming convention."""
    m = re.match(r"([a-z]{2,3})_", name)
    return m.group(1) if m else None


def read_dir(directory: Path, language: str | None = None) -> list[Clip]:
    """Audio files with a ``.txt`` reference beside each; language from ``language`` or an ``xx_`` prefix."""
    clips = []
    for audio in sorted(p for p in directory.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
        ref = audio.with_suffix(".txt")
        if not ref.exists():
            continue  # no reference: nothing to score
        lang = language or language_from_name(audio.name)
        if lang is None:
            raise ValueError(f"{audio.name}: no language (pass --language or name it xx_...)")
        clips.append(Clip(audio.stem, audio, lang, ref.read_text(encoding="utf-8").strip()))
    return clips


def default_clips() -> list[Clip]:
    return [*read_manifest(DEFAULT_MANIFEST), Clip("jfk", JFK, "en", JFK_TEXT, 11.0)]


def select(clips: Sequence[Clip], files: int | None = None, pattern: str | None = None) -> list[Clip]:
    """The clips whose file name matches ``pattern`` (a glob), then the first ``files`` of them."""
    out = [c for c in clips if pattern is None or fnmatch.fnmatch(c.path.name, pattern) or fnmatch.fnmatch(c.name, pattern)]
    return out[:files] if files else out


# ---- built long files ---------------------------------------------------------------------------


def join(parts: Sequence[tuple[np.ndarray, str, str]], pause_s: float) -> tuple[np.ndarray, str, tuple[Span, ...]]:
    """(samples, reference, language) parts joined with ``pause_s`` of silence between them: the audio,
    the joined reference and each part's time span (so segment languages can be checked against it)."""
    audio, spans, t = [], [], 0.0
    pause = np.zeros(int(pause_s * SR), np.float32)
    for i, (samples, _, lang) in enumerate(parts):
        if i:
            audio.append(pause)
            t += len(pause) / SR
        audio.append(samples.astype(np.float32))
        spans.append(Span(round(t, 3), round(t + len(samples) / SR, 3), lang))
        t += len(samples) / SR
    return np.concatenate(audio), " ".join(text for _, text, _ in parts), tuple(spans)


# ---- scoring ------------------------------------------------------------------------------------


@cache
def _normalizer(english: bool):
    from whisper_normalizer.basic import BasicTextNormalizer
    from whisper_normalizer.english import EnglishTextNormalizer

    # built once: the English one loads its spelling table
    return EnglishTextNormalizer() if english else BasicTextNormalizer()


def normalise(text: str, language: str) -> str:
    return " ".join(_normalizer(language == "en")(text).split())


def score(reference: str, hypothesis: str, language: str) -> Score:
    """Word errors (substitutions + deletions + insertions) after normalising both sides."""
    import jiwer

    ref, hyp = normalise(reference, language), normalise(hypothesis, language)
    # jiwer refuses empty strings: an empty side is all deletions or all insertions
    if not ref or not hyp:
        return Score(len(hyp.split()) if not ref else len(ref.split()), len(ref.split()))
    out = jiwer.process_words(ref, hyp)
    return Score(out.substitutions + out.deletions + out.insertions, out.substitutions + out.deletions + out.hits)


def corpus_wer(scores: Iterable[Score]) -> Score:
    scores = list(scores)
    return Score(sum(s.errors for s in scores), sum(s.ref_words for s in scores))


def language_match(segments: Sequence[Span], spans: Sequence[Span]) -> float | None:
    """Share of returned segments whose language is that of the joined clip they overlap most;
    segments overlapping no clip (in a pause) are not counted."""
    counted = matched = 0
    for seg in segments:
        overlap, lang = max(((min(seg.end, s.end) - max(seg.start, s.start), s.language) for s in spans), default=(0.0, None))
        if overlap <= 0:
            continue
        counted += 1
        matched += seg.language == lang
    return round(matched / counted, 3) if counted else None


def repeated(segments: Sequence[Span], min_overlap_s: float = 0.1) -> int:
    """Segments whose (normalised) text another segment says again over the same time: a repair path
    that emits a sentence twice."""

    def same(a: Span, b: Span) -> bool:
        overlap = min(a.end, b.end) - max(a.start, b.start)
        return overlap > min_overlap_s and a.text.strip().lower() == b.text.strip().lower() != ""

    return sum(any(same(a, b) for b in segments[i + 1 :]) for i, a in enumerate(segments))


def system_row(clip: Clip, out: Output, system: str) -> SystemRow:
    s = score(clip.reference, out.text, clip.language)
    match = language_match(out.segments, clip.spans) if clip.spans and out.segments else None
    repeats = repeated(out.segments) if out.segments else None
    return SystemRow(round(s.wer, 4), s.errors, s.ref_words, out.language, round(out.time_s, 3), match, out.text, repeats)


# ---- aggregation --------------------------------------------------------------------------------


def _wer_of(rows: Sequence[FileRow], system: str) -> dict | None:
    got = [r.systems[system] for r in rows if system in r.systems]
    if not got:
        return None
    total = corpus_wer(Score(s.errors, s.ref_words) for s in got)
    return {"wer": round(total.wer, 4), "errors": total.errors, "ref_words": total.ref_words, "files": len(got)}


def summarise(rows: Sequence[FileRow], systems: Sequence[str]) -> dict:
    """Corpus WER per language and overall, time per audio second, language-ID accuracy and
    service / engine time ratios, per system. Long files are summarised apart ("long")."""
    short = [r for r in rows if not r.long]
    groups = {lang: [r for r in short if r.language == lang] for lang in sorted({r.language for r in short})}
    groups["overall"] = short
    groups["long"] = [r for r in rows if r.long]
    out: dict = {"wer": {g: {s: _wer_of(rs, s) for s in systems} for g, rs in groups.items() if rs}}
    out["time_per_audio_s"], out["language_id_accuracy"] = {}, {}
    for s in systems:
        got = [(r, r.systems[s]) for r in rows if s in r.systems]
        audio = sum(r.seconds for r, _ in got)
        out["time_per_audio_s"][s] = round(sum(x.time_s for _, x in got) / audio, 4) if audio else None
        checked = [(r, x) for r, x in got if r.language != MIXED and x.language is not None]
        out["language_id_accuracy"][s] = (
            round(sum(x.language == r.language for r, x in checked) / len(checked), 3) if checked else None
        )
    out["time_ratio"] = _time_ratios(short)  # the recordings of the set, as a user sends them
    out["time_ratio_long"] = _time_ratios(groups["long"])  # the built files (code-switching re-decodes)
    out["service_worse"] = worse_files(rows)
    return out


def _time_ratios(rows: Sequence[FileRow]) -> dict[str, float]:
    """Service time / engine time summed over ``rows``, per (service, engine) pair."""
    return {
        f"{svc}/{eng}": round(sum(r.systems[svc].time_s for r in both) / sum(r.systems[eng].time_s for r in both), 3)
        for svc in SERVICE_SYSTEMS
        for eng in ENGINE_SYSTEMS
        if (both := [r for r in rows if svc in r.systems and eng in r.systems])
    }


def file_ratios(row: FileRow) -> dict[str, float]:
    return {
        f"{svc}/{eng}": round(row.systems[svc].time_s / row.systems[eng].time_s, 3)
        for svc in SERVICE_SYSTEMS
        for eng in ENGINE_SYSTEMS
        if svc in row.systems and eng in row.systems and row.systems[eng].time_s > 0
    }


def worse_files(rows: Sequence[FileRow], margin: float = WORSE_MARGIN) -> dict[str, list[str]]:
    """Per service/engine pair, the files where the service's WER exceeds the engine's by more than ``margin``."""
    return {
        f"{svc}>{eng}": [
            r.file for r in rows if svc in r.systems and eng in r.systems and r.systems[svc].wer > r.systems[eng].wer + margin
        ]
        for svc in SERVICE_SYSTEMS
        for eng in ENGINE_SYSTEMS
    }


def rows_json(rows: Sequence[FileRow]) -> list[dict]:
    return [{**asdict(r), "time_ratio": file_ratios(r)} for r in rows]


# ---- printing -----------------------------------------------------------------------------------


def _cell(x: float | None, fmt: str = "{:.3f}") -> str:
    return "-" if x is None else fmt.format(x)


def print_summary(summary: dict, systems: Sequence[str]) -> None:
    print(f"\n{'corpus WER':<12}" + "".join(f"{s:>16}" for s in systems))
    for group, per in summary["wer"].items():
        print(f"{group:<12}" + "".join(f"{_cell(per[s] and per[s]['wer']):>16}" for s in systems))
    print(f"{'time/audio s':<12}" + "".join(f"{_cell(summary['time_per_audio_s'][s], '{:.4f}'):>16}" for s in systems))
    print(f"{'lang-ID acc':<12}" + "".join(f"{_cell(summary['language_id_accuracy'][s]):>16}" for s in systems))
    for pair, ratio in summary["time_ratio"].items():
        long = summary.get("time_ratio_long", {}).get(pair)
        print(
            f"time ratio {pair}: {ratio:.3f} over the set's recordings"
            + (f", {long:.3f} over the built long files" if long else "")
        )
    for pair, files in summary["service_worse"].items():
        a, b = pair.split(">")
        if a in systems and b in systems:
            print(f"files with WER {a} > {b} + {WORSE_MARGIN}: {len(files)}" + (f" ({', '.join(files)})" if files else ""))


def print_differences(rows: Sequence[FileRow], margin: float = WORSE_MARGIN) -> None:
    """The per-file rows where a service system differs from the sequential engine by more than ``margin``."""
    found = False
    for r in rows:
        base = r.systems.get("engine_seq")
        diffs = {
            s: r.systems[s] for s in SERVICE_SYSTEMS if base and s in r.systems and abs(r.systems[s].wer - base.wer) > margin
        }
        if diffs:
            cells = ", ".join(f"{s} {x.wer:.3f} ({x.errors}/{x.ref_words})" for s, x in diffs.items())
            print(f"  {r.file} [{r.language}, {r.seconds:.1f} s]: engine_seq {base.wer:.3f} vs {cells}")
            found = True
    if not found:
        print("  none")


def print_row(r: FileRow) -> None:
    def cell(s: str, x: SystemRow) -> str:
        extra = f" lang-match {x.segment_language_match:.2f}" if x.segment_language_match is not None else ""
        extra += f" REPEATED {x.repeated}" if x.repeated else ""
        return f"{s} {x.wer:.3f} {x.language or '-'} {x.time_s:.2f}s{extra}"

    print(f"[{r.file} {r.language} {r.seconds:.1f}s] " + "  ".join(cell(s, x) for s, x in r.systems.items()))


# ---- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--manifest", type=Path, help="TSV with columns file, language, reference_text (seconds optional)")
    src.add_argument("--dir", type=Path, help="audio files with a .txt reference beside each")
    ap.add_argument("--language", help="language of the --dir files (default: their xx_ name prefix)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {','.join(SYSTEMS)}")
    ap.add_argument("--files", type=int, help="only the first N files (after --match)")
    ap.add_argument("--match", help="only files whose name matches this glob, e.g. 'de_*'")
    ap.add_argument(
        "--stream-speed", type=float, default=3.0, help="streaming pace in x real time (1 = real time, 0 = as fast as possible)"
    )
    ap.add_argument(
        "--long", action=argparse.BooleanOptionalAction, default=True, help="built long files (window joins, code-switching)"
    )
    ap.add_argument(
        "--meetings", action=argparse.BooleanOptionalAction, default=True, help="diarization on ami_dev00 and two_speakers"
    )
    ap.add_argument(
        "--streaming-settings",
        type=json.loads,
        default={},
        help="the server's streaming settings as JSON, e.g. '{\"commit_words\": true}' (recorded in the results)",
    )
    ap.add_argument(
        "--out", type=Path, default=RESULTS / "accuracy.json", help="results JSON (default bench/results/accuracy.json)"
    )
    args = ap.parse_args(argv)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown systems {sorted(unknown)}; choose from {','.join(SYSTEMS)}")
    return args


def clips_for(args: argparse.Namespace) -> list[Clip]:
    if args.manifest:
        return read_manifest(args.manifest)
    if args.dir:
        return read_dir(args.dir, args.language)
    return default_clips()


if __name__ == "__main__":
    # through the package names, so the dataclasses here are the ones bench.accuracy_systems uses
    from bench.accuracy import parse_args as _parse_args
    from bench.accuracy_systems import run

    run(_parse_args())
