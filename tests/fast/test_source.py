"""Source rules no linter knows. Layering (import-linter), declared dependencies (deptry) and dead code
(vulture) are checked by ``make check``."""

from __future__ import annotations

import re

from tests.audio_utils import ROOT


def test_one_sample_rate_constant() -> None:
    """The service's rate is ``schema.SAMPLE_RATE``; a literal 16000 elsewhere would drift from it."""
    literal = re.compile(r"\b16_?000\b")
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in (ROOT / "audio_service").rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if literal.search(line) and not line.startswith("SAMPLE_RATE =")
    ]
    assert not found, found


def test_no_import_cycle() -> None:
    """No module of audio_service imports, through any chain, a module that imports it (TYPE_CHECKING
    imports count: a cycle of types is still a cycle of concepts)."""
    import grimp

    graph = grimp.build_graph("audio_service", cache_dir=None)
    cycles = set()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.add(" -> ".join((module, *back)))
    assert not cycles, sorted(cycles)


def test_only_the_whisper_package_may_import_faster_whisper() -> None:
    """The import-linter contract that keeps faster-whisper and CTranslate2 inside ``audio_service.whisper``
    names every other top-level module, so a new package cannot import them unnoticed."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if "faster_whisper" in c.get("forbidden_modules", ())]
    top = {
        p.stem if p.is_file() else p.name
        for p in (ROOT / "audio_service").iterdir()
        if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    assert {m.removeprefix("audio_service.") for m in contract["source_modules"]} == top - {"__init__", "whisper"}


def test_the_decode_types_load_without_faster_whisper() -> None:
    """Streaming's pure modules and the fake backend use ``whisper.types`` without loading faster-whisper or
    CTranslate2 (their import costs seconds and, for CTranslate2, native threads)."""
    import subprocess
    import sys

    modules = ["audio_service.whisper.types", "audio_service.streaming.transcript", "audio_service.streaming.stabilize"]
    loaded = "sorted({m.split('.')[0] for m in sys.modules} & {'ctranslate2', 'faster_whisper'})"
    code = f"import sys, {', '.join(modules)}; print({loaded})"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
