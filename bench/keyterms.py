"""Keyterms (``keyterms`` / ``hotwords``): recall of rare words and names with and without them, the
WER on the other words, and false insertions of keyterms that are not in the audio.

    .venv/bin/python bench/keyterms.py              # about 10 minutes on 2 cores
    .venv/bin/python bench/keyterms.py --no-stream  # the batch path only

The recordings are ``../shared/data/realspeech`` (real read speech in 4 languages) and jfk, decoded
in-process by the batch pipeline (``BatchService.run_sync``, the server's default model and decoder,
the language given). The terms are the names and rare words of the references; those the default model
gets wrong without help were found by running this script's ``none`` condition, the others (names it
already gets right) show that a keyterm does not break a word that was fine. Conditions:

* ``none``: no keyterms;
* ``own``: the file's own terms as keyterms (batch: decoded without and with them as hotwords, the
  keyterms' spans taken from the second decode, ``audio_service.pipeline.keyterms``);
* ``own_hotwords`` (batch): the same terms as free-text ``hotwords``, one decode with them in the prompt
  (what the streaming endpoint does with keyterms);
* ``distractors``: keyterms NOT in the audio (the other files' terms, and a few names), the negative
  control: a keyterm that shows up in the transcript is a false insertion;
* ``glossary``: one list of every term and distractor for every file (one glossary for a deployment).

Term recall: occurrences of a term (normalised, as a word sequence) in the transcript, at most its
count in the reference, over its count in the reference. "Rest WER": errors on the reference words
that are not term words (substitutions and deletions of those words, insertions not next to a term
word), over their number. Recall and rest WER are summed over the files that have terms of their own,
the same files for every condition; each of those files is also printed with ``none`` beside the others.

The streaming endpoint is measured too (``none``, ``own`` and ``distractors``, the ``keyterms`` query
parameter): a server started from this checkout, each file streamed as fast as it takes it, its final
segments scored the same way. Writes bench/results/keyterms.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _common import RESULTS, machine_info, save  # noqa: E402

from audio_service.models.registry import ModelRegistry  # noqa: E402
from audio_service.pipeline.batch import BatchJob, BatchService  # noqa: E402
from audio_service.settings import Settings  # noqa: E402
from audio_service.whisper.decoding import keyterms_text  # noqa: E402
from tests.audio_utils import JFK, JFK_TEXT, REALSPEECH, load_16k, normalize, realspeech_manifest  # noqa: E402
from tests.server import ServerProcess  # noqa: E402
from tests.stream_client import stream  # noqa: E402

# the names and rare words of each reference (as the keyterms a user would type)
TERMS: dict[str, tuple[str, ...]] = {
    "en_librivox_sense_and_sensibility_ch01.wav": ("Dashwood",),
    "en_librispeech_1089-134686-0000.wav": ("turnips", "mutton", "ladled", "fattened"),
    "en_librispeech_1272-128104-0000.wav": ("Quilter",),
    "en_librispeech_1995-1837-0001.wav": (),
    "en_fleurs_001.wav": ("Sie",),
    "de_fleurs_001.wav": ("Dinosaurier", "T-Rex"),
    "de_fleurs_002.wav": ("Tempelritter", "Unabhängigkeitserklärung", "Schatzkarte"),
    "fr_fleurs_003.wav": ("rugissement", "grondements"),
    "fr_fleurs_005.wav": ("Giancarlo Fisichella",),
    "es_fleurs_000.wav": ("enfáticamente", "riesgo"),
    "es_fleurs_002.wav": ("San Pedro",),
    "jfk": (),
}
# names in none of the recordings, added to every file's distractors
EXTRA_DISTRACTORS = ("Khrushchev", "Ouagadougou", "Nguyen")
MAX_DISTRACTORS = 6


def term_count(term: str, text: str) -> int:
    """How many times ``term`` occurs in ``text`` as a whole word sequence (both normalised)."""
    t, words = normalize(term.replace("-", " ")).split(), normalize(text.replace("-", " ")).split()
    return sum(words[i : i + len(t)] == t for i in range(len(words) - len(t) + 1)) if t else 0


def recall(terms: tuple[str, ...], reference: str, hypothesis: str) -> tuple[int, int]:
    """(term occurrences found, term occurrences in the reference)."""
    found = total = 0
    for term in terms:
        n = term_count(term, reference)
        found += min(n, term_count(term, hypothesis))
        total += n
    return found, total


def rest_errors(terms: tuple[str, ...], reference: str, hypothesis: str) -> tuple[int, int]:
    """(errors, words) on the reference words that are not term words (see the module docstring)."""
    import jiwer

    ref = normalize(reference.replace("-", " "))
    hyp = normalize(hypothesis.replace("-", " "))
    term_words = {w for t in terms for w in normalize(t.replace("-", " ")).split()}
    ref_words = ref.split()
    is_term = [w in term_words for w in ref_words]
    out = jiwer.process_words(ref, hyp)
    errors = 0
    for chunk in out.alignments[0]:
        if chunk.type in ("substitute", "delete"):
            errors += sum(not is_term[i] for i in range(chunk.ref_start_idx, chunk.ref_end_idx))
        elif chunk.type == "insert":
            near = [i for i in (chunk.ref_start_idx - 1, chunk.ref_start_idx) if 0 <= i < len(ref_words)]
            errors += 0 if any(is_term[i] for i in near) else chunk.hyp_end_idx - chunk.hyp_start_idx
    return errors, sum(not t for t in is_term)


def clips() -> list[tuple[str, Path, str, str]]:
    """(name, path, language, reference) of jfk and the realspeech recordings."""
    rows = realspeech_manifest()
    out = [(f, REALSPEECH / f, r["language"], r["reference_text"]) for f, r in rows.items()]
    return out + [("jfk", JFK, "en", JFK_TEXT)]


def distractors(name: str, language: str, reference: str, languages: dict[str, str]) -> tuple[str, ...]:
    """Terms of other files of the same language first, then names: none of them in this reference."""
    same = [t for f, ts in TERMS.items() if f != name and languages[f] == language for t in ts]
    other = [t for f, ts in TERMS.items() if f != name and languages[f] != language for t in ts]
    picked = [t for t in [*same, *EXTRA_DISTRACTORS, *other] if term_count(t, reference) == 0]
    return tuple(dict.fromkeys(picked))[:MAX_DISTRACTORS]


def score(own: tuple[str, ...], offered: tuple[str, ...], reference: str, text: str, seconds: float) -> dict:
    """One run's figures; ``offered``: the keyterms given that are not in the reference."""
    found, total = recall(own, reference, text)
    errors, words = rest_errors(own, reference, text)
    return {
        "text": text,
        "terms_found": found,
        "terms_total": total,
        "rest_errors": errors,
        "rest_words": words,
        "false_insertions": [t for t in offered if term_count(t, text) > term_count(t, reference)],
        "seconds": round(seconds, 2),
    }


def summarize(files: list[dict], conditions: tuple[str, ...], key: str = "runs") -> dict:
    summary = {}
    for cond in conditions:
        runs = [f[key][cond] for f in files if cond in f[key]]
        with_terms = [f[key][cond] for f in files if f["terms"]]  # every condition runs on these
        found, total = sum(r["terms_found"] for r in with_terms), sum(r["terms_total"] for r in with_terms)
        errors, words = sum(r["rest_errors"] for r in with_terms), sum(r["rest_words"] for r in with_terms)
        summary[cond] = {
            "files": len(runs),
            "files_with_terms": len(with_terms),
            "term_recall": round(found / total, 3) if total else None,
            "terms_found": found,
            "terms_total": total,
            "rest_wer": round(errors / words, 4) if words else None,
            # every file (jfk and 1995 have no terms: their whole text), for the conditions that ran on all
            "all_files_wer": round(sum(r["rest_errors"] for r in runs) / sum(r["rest_words"] for r in runs), 4)
            if len(runs) == len(files)
            else None,
            "false_insertions": sum(len(r["false_insertions"]) for r in runs),
            "distractor_terms_offered": sum(len(f["distractors"]) for f in files) if cond == "distractors" else None,
        }
    return summary


def print_table(title: str, summary: dict) -> None:
    print(f"\n{title}")
    print(f"{'condition':12s} {'term recall':>16s} {'rest WER':>9s} {'all-files WER':>14s} {'false insertions':>17s}")
    for cond, s in summary.items():
        recall_s = f"{s['terms_found']}/{s['terms_total']} ({s['term_recall']:.2f})" if s["terms_total"] else "-"
        all_wer = "-" if s["all_files_wer"] is None else f"{s['all_files_wer']:.4f}"
        print(f"{cond:12s} {recall_s:>16s} {s['rest_wer']:>9.4f} {all_wer:>14s} {s['false_insertions']:>17d}")


def print_files(title: str, files: list[dict], conditions: tuple[str, ...], key: str) -> None:
    """Per file with terms: term recall and rest errors of each condition, ``none`` first."""
    print(f"\n{title}: per file, terms found / rest errors")
    print(f"{'file':45s} " + " ".join(f"{c:>14s}" for c in conditions))
    for f in files:
        if f["terms"]:
            cells = [
                f"{r['terms_found']}/{r['terms_total']} {r['rest_errors']}/{r['rest_words']}"
                for r in (f[key][c] for c in conditions)
            ]
            print(f"{f['file']:45s} " + " ".join(f"{c:>14s}" for c in cells))


def stream_text(srv: ServerProcess, path: Path, language: str, keyterms: tuple[str, ...]) -> str:
    """The final text of ``path`` streamed as fast as the server takes it."""
    params = {"language": language, **({"keyterms": ",".join(keyterms)} if keyterms else {})}
    r = asyncio.run(stream(srv.ws_url, load_16k(path), frame_ms=100, pace=0, params=params, timeout_s=300))
    if r.errors or "final" not in r.checkpoints:
        raise RuntimeError(f"stream ended without the final checkpoint: errors {r.errors}, close code {r.close_code}")
    return " ".join(s["text"].strip() for _, s in sorted(r.segments.items()) if s["is_final"] and s["text"].strip())


def measure(
    files: list[dict],
    items: list[tuple[str, Path, str, str]],
    key: str,
    conditions: tuple[str, ...],
    glossary: tuple[str, ...],
    transcribe: Callable[[Path, str, tuple[str, ...], str], str],
) -> None:
    """Each file under each condition: ``transcribe(path, language, keyterms, condition)`` scored into ``row[key]``."""
    for row, (name, path, language, reference) in zip(files, items, strict=True):
        own = TERMS[name]
        keyterms = {"none": (), "own": own, "distractors": tuple(row["distractors"]), "glossary": glossary}
        keyterms["own_hotwords"] = own
        row[key] = {}
        for cond in conditions:
            if cond.startswith("own") and not own:
                continue
            t0 = time.perf_counter()
            text = transcribe(path, language, keyterms[cond], cond)
            offered = tuple(t for t in keyterms[cond] if t not in own)
            run = row[key][cond] = score(own, offered, reference, text, time.perf_counter() - t0)
            print(
                f"{key:11s} {name:45s} {cond:12s} terms {run['terms_found']}/{run['terms_total']} rest errors"
                f" {run['rest_errors']}/{run['rest_words']} inserted {run['false_insertions']}",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True, help="the streaming endpoint too")
    args = ap.parse_args()
    settings = Settings()
    service = BatchService(settings, ModelRegistry(settings))
    items = clips()
    languages = {name: lang for name, _, lang, _ in items}
    glossary = tuple(dict.fromkeys([t for ts in TERMS.values() for t in ts] + list(EXTRA_DISTRACTORS)))
    conditions = ("none", "own", "own_hotwords", "distractors", "glossary")
    stream_conditions = ("none", "own", "distractors")
    files = []
    for name, _, language, reference in items:
        negative = distractors(name, language, reference, languages)
        files.append({"file": name, "language": language, "terms": list(TERMS[name]), "distractors": list(negative)})

    def batch_text(path: Path, language: str, keyterms: tuple[str, ...], condition: str) -> str:
        # the terms as the form's ``keyterms`` field gives them: the hotwords text and the list (none for
        # ``own_hotwords``: free-text hotwords, one decode)
        terms = () if condition == "own_hotwords" else keyterms
        job = BatchJob(language=language, hotwords=keyterms_text(keyterms), keyterms=terms)
        return service.run_sync(str(path), service.validate(job)).text

    measure(files, items, "runs", conditions, glossary, batch_text)
    if args.stream:
        with ServerProcess(log_path=RESULTS / "keyterms-server.log") as srv:
            measure(files, items, "stream_runs", stream_conditions, glossary, lambda *a: stream_text(srv, *a[:3]))
    summary = summarize(files, conditions)
    print_table("batch (POST /v1/audio/transcriptions)", summary)
    print_files("batch", files, conditions[:3], "runs")
    results = {
        "machine": machine_info(),
        "model": service.validate(BatchJob()).model,
        "decoder": settings.batch.decoder,
        "summary": summary,
    }
    if args.stream:
        results["stream_summary"] = summarize(files, stream_conditions, "stream_runs")
        print_table("streaming (WebSocket, keyterms query parameter)", results["stream_summary"])
        print_files("streaming", files, stream_conditions[:2], "stream_runs")
    save("keyterms", {**results, "files": files})


if __name__ == "__main__":
    main()
