"""The structure is checked, not promised: import layering (import-linter) and declared dependencies (deptry).

Both tools read their configuration from pyproject.toml ([tool.importlinter], [tool.deptry]).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.audio_utils import ROOT

BIN = Path(sys.executable).parent


def run_tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    tool = BIN / name
    assert tool.exists(), f"{name} comes with the dev extra (pip install -e '.[dev]')"
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([str(tool), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_import_layers_hold() -> None:
    """api -> pipeline | streaming -> models | audio | formatting -> settings | schema | errors, and only
    the HTTP edge imports FastAPI, Starlette or uvicorn."""
    proc = run_tool("lint-imports", "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["audio_service"], id="service"),
        # tests, benchmarks and scripts: every import is declared (main list or dev extra); the main list
        # naturally has packages they do not use, and they may use the dev tools.
        pytest.param(["tests", "bench", "scripts", "--exclude", "__pycache__", "--ignore", "DEP002,DEP004"], id="tests"),
    ],
)
def test_dependencies_match_imports(args: list[str]) -> None:
    """No unused, missing or transitive-only dependency, and no dev tool imported by the service."""
    proc = run_tool("deptry", "--no-ansi", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No dependency issues found" in proc.stdout + proc.stderr


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


def test_no_dead_code() -> None:
    """vulture finds no unused code in audio_service/ (what frameworks call by name is listed in [tool.vulture])."""
    proc = run_tool("vulture")
    assert proc.returncode == 0, proc.stdout + proc.stderr
