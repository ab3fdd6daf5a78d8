"""The documentation: the README stays short and links every page, and the generated parts of docs/ match
their sources. The site's strict build (no broken link or anchor) is in ``make check``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_readme_is_short_and_links_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert readme.splitlines()[6:9] == [
        "```bash",
        "make serve   # installs everything (first run: a few minutes) and starts the server on :8000 with the embedded "
        "default model",
        "make test    # runs the whole test suite (starts its own servers on loopback ports)",
    ]
    for link in re.findall(r"\]\(([^)#]+)[^)]*\)", readme):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), f"README links to a missing file: {link}"
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in readme, f"README does not link docs/{page.name}"


def test_settings_table_is_current() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from settings_table import DOCS as PAGE
        from settings_table import with_table
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    page = PAGE.read_text()
    assert with_table(page) == page, "docs/configuration.md: run python scripts/settings_table.py --write"


def test_benchmarks_page_is_current() -> None:
    result = subprocess.run([sys.executable, "scripts/benchmarks_page.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr + result.stdout


def test_streaming_page_documents_every_close_code() -> None:
    from audio_service.errors import CloseCode

    page = (DOCS / "streaming.md").read_text()
    missing = sorted(int(c) for c in CloseCode if f"\n| {int(c)} |" not in page)
    assert not missing, f"docs/streaming.md has no close-code row for {missing}"
