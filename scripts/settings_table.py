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

from audio_service.settings import ENV_PREFIX, env_name, flag_name, flat_name, groups  # noqa: E402

DOCS = ROOT / "docs" / "configuration.md"
START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def table() -> str:
    rows = [
        "| setting | environment variable | flag | default | meaning | single-level name (warns) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for group, model in groups().items():
        rows.append(f"| **{group}** | | | | {model.__doc__} | |")
        for name, field in model.model_fields.items():
            default = field.get_default(call_default_factory=True)
            shown = json.dumps(default) if isinstance(default, (list, dict)) else str(default)
            if (group, name) == ("models", "cache_dir"):
                shown = "~/.cache/audio-service"  # not this machine's home directory
            flat = ENV_PREFIX + flat_name(model, name, field).upper()
            rows.append(
                f"| `{group}.{name}` | `{env_name(group, name)}` | `{flag_name(group, name)}` | `{shown}` | {field.description} "
                f"| `{flat}` |"
            )
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
