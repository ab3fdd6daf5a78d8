"""bench/accuracy.py's pure parts on hand-made inputs: no model, no server, no audio decoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.accuracy import (
    MIXED,
    Clip,
    FileRow,
    Output,
    Score,
    Span,
    SystemRow,
    corpus_wer,
    join,
    language_from_name,
    language_match,
    parse_args,
    read_dir,
    read_manifest,
    score,
    select,
    summarise,
    system_row,
    worse_files,
)


def test_manifest_columns_and_paths(tmp_path: Path) -> None:
    # a quote inside a reference must not be read as CSV quoting
    (tmp_path / "m.tsv").write_text(
        'file\tseconds\tlanguage\treference_text\nen_a.wav\t1.5\ten\tHe said "hi" twice\nde_b.wav\t\tde\tGuten Tag\n',
        encoding="utf-8",
    )
    a, b = read_manifest(tmp_path / "m.tsv")
    assert (a.name, a.path, a.language, a.reference, a.seconds) == (
        "en_a",
        tmp_path / "en_a.wav",
        "en",
        'He said "hi" twice',
        1.5,
    )
    assert (b.language, b.seconds) == ("de", None)


def test_manifest_missing_column(tmp_path: Path) -> None:
    (tmp_path / "m.tsv").write_text("file\tlanguage\nx.wav\ten\n")
    with pytest.raises(ValueError, match="reference_text"):
        read_manifest(tmp_path / "m.tsv")


def test_dir_references_and_languages(tmp_path: Path) -> None:
    for name in ("fr_one.wav", "es_two.flac", "no_ref.wav"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "fr_one.txt").write_text("Bonjour.\n")
    (tmp_path / "es_two.txt").write_text("Hola")
    clips = read_dir(tmp_path)
    assert [(c.name, c.language, c.reference) for c in clips] == [("es_two", "es", "Hola"), ("fr_one", "fr", "Bonjour.")]
    assert {c.language for c in read_dir(tmp_path, "it")} == {"it"}
    assert language_from_name("plain.wav") is None
    (tmp_path / "plain.wav").write_bytes(b"")
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(ValueError, match="no language"):
        read_dir(tmp_path)


def test_select_glob_then_count() -> None:
    clips = [Clip(n, Path(f"{n}.wav"), n[:2], "x") for n in ("en_a", "de_a", "de_b", "de_c")]
    assert [c.name for c in select(clips, pattern="de_*")] == ["de_a", "de_b", "de_c"]
    assert [c.name for c in select(clips, files=2, pattern="de_*")] == ["de_a", "de_b"]


def test_normalised_errors() -> None:
    # English normaliser: "Mr." = "mister", numbers spelled out, punctuation and case ignored
    assert score("Mr. Quilter paid ten dollars.", "mister quilter paid $10", "en") == Score(0, 4)  # both "$10"
    # basic normaliser elsewhere: case and punctuation only; one deletion, one substitution
    assert score("Er griff auch alles an.", "er griff alle an", "de") == Score(2, 5)
    assert score("a b c", "", "en") == Score(3, 3)  # empty hypothesis: all deletions
    assert score("", "a b", MIXED) == Score(2, 0)


def test_corpus_wer_sums_errors_not_rates() -> None:
    total = corpus_wer([Score(1, 10), Score(9, 10), Score(0, 80)])
    assert (total.errors, total.ref_words, total.wer) == (10, 100, 0.1)  # mean of file WERs would be 0.333


def _row(name: str, lang: str, seconds: float, **systems: tuple[int, int, str | None, float]) -> FileRow:
    return FileRow(name, lang, seconds, False, {s: SystemRow(e / n, e, n, lg, t) for s, (e, n, lg, t) in systems.items()})


def test_summary_per_language_time_and_language_id() -> None:
    rows = [
        _row("en1", "en", 10, batch=(1, 10, "en", 2.0), engine_seq=(1, 10, "en", 1.0)),
        _row("en2", "en", 10, batch=(3, 30, "en", 2.0), engine_seq=(0, 30, "en", 3.0)),
        _row("de1", "de", 20, batch=(5, 20, "nl", 4.0), engine_seq=(4, 20, "de", 4.0)),
    ]
    s = summarise(rows, ["batch", "engine_seq"])
    assert s["wer"]["en"]["batch"]["wer"] == 0.1 and s["wer"]["en"]["engine_seq"]["wer"] == 0.025
    assert s["wer"]["overall"]["batch"] == {"wer": 0.15, "errors": 9, "ref_words": 60, "files": 3}
    assert s["time_per_audio_s"] == {"batch": 0.2, "engine_seq": 0.2}
    assert s["language_id_accuracy"] == {"batch": 0.667, "engine_seq": 1.0}
    assert s["time_ratio"]["batch/engine_seq"] == 1.0
    # en2: 0.1 > 0.0 + 0.01; de1: 0.25 > 0.2 + 0.01; en1 equal
    assert worse_files(rows)["batch>engine_seq"] == ["en2", "de1"]


def test_code_switch_spans_and_segment_language() -> None:
    sr = 16000
    audio, text, spans = join([(np.ones(2 * sr, np.float32), "one", "en"), (np.ones(sr, np.float32), "zwei", "de")], 0.8)
    assert len(audio) == int(3.8 * sr) and text == "one zwei"
    assert spans == (Span(0.0, 2.0, "en"), Span(2.8, 3.8, "de"))
    segments = [
        Span(0.0, 1.9, "en"),  # inside the English clip: match
        Span(1.5, 3.0, "en"),  # 0.5 s English, 0.2 s German: counted as English, match
        Span(2.9, 3.8, "en"),  # German clip detected as English: mismatch
        Span(2.1, 2.7, "de"),  # in the pause: not counted
    ]
    assert language_match(segments, spans) == 0.667
    assert language_match([Span(2.1, 2.7, "de")], spans) is None
    clip = Clip("cs", Path("cs.wav"), MIXED, "one zwei", 3.8, True, spans)
    row = system_row(clip, Output("One, zwei!", "en", 1.0, tuple(segments)), "batch")
    assert (row.wer, row.segment_language_match) == (0.0, 0.667)


def test_cli_systems() -> None:
    args = parse_args(["--systems", "batch, engine_seq", "--files", "2", "--no-long"])
    assert (args.systems, args.files, args.long, args.meetings, args.stream_speed) == (
        ["batch", "engine_seq"],
        2,
        False,
        True,
        3.0,
    )
    with pytest.raises(SystemExit):
        parse_args(["--systems", "batch,whisperx"])


def test_repeated_counts_a_text_said_twice_over_the_same_time_only():
    from bench.accuracy import Span, repeated

    said = [Span(0.0, 2.0, "en", "Hello there."), Span(1.0, 2.5, "en", " hello there."), Span(5.0, 6.0, "en", "Hello there.")]
    assert repeated(said) == 1  # the third says it again, but later: speech, not a repair's duplicate
    assert repeated(said[::2]) == 0
