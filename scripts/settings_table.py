"""Print the configuration table for the README from the Settings model (one source of truth)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audio_service.settings import Settings  # noqa: E402


def table() -> str:
    rows = ["| setting (env `AUDIO_SERVICE_…` / flag) | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(default) if isinstance(default, (list, dict)) else str(default)
        if name == "model_cache_dir":
            shown = "~/.cache/audio-service"
        rows.append(f"| `{name.upper()}` / `--{name.replace('_', '-')}` | `{shown}` | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
