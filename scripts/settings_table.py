"""The configuration table of docs/configuration.md, from the Settings model (one source of truth).

python scripts/settings_table.py            # prints the table
python scripts/settings_table.py --write    # replaces the table between the markers in docs/configuration.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audio_service.settings import Settings  # noqa: E402

DOCS = ROOT / "docs" / "configuration.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def table() -> str:
    rows = ["| setting (env `AUDIO_SERVICE_…` / flag) | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(default) if isinstance(default, (list, dict)) else str(default)
        if name == "model_cache_dir":
            shown = "~/.cache/audio-service"
        rows.append(f"| `{name.upper()}` / `--{name.replace('_', '-')}` | `{shown}` | {field.description} |")
    return "\n".join(rows)


def with_table(document: str) -> str:
    """``document`` with the text between the markers replaced by the current table."""
    head, rest = document.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}\n{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        DOCS.write_text(with_table(DOCS.read_text()))
        print(f"wrote {DOCS}")
    else:
        print(table())
