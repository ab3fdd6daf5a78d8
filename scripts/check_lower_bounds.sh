#!/usr/bin/env bash
# The lower bounds in pyproject.toml hold: install the service with the lowest version of every direct
# dependency that they allow (uv's --resolution lowest-direct; what those pull in at their newest) into a
# throwaway venv, then use it: import every module, parse the command line, run the in-process test
# layer (tests/fast) and tests/test_core_install.py (the server starts on the default settings,
# transcribes jfk, and refuses what needs a missing extra). The core only: the extras' pins (torch==2.8.*, pyannote.audio==4.0.7)
# leave them no range to check. `make lower-bounds` runs it; PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

UV=$(command -v uv || true)
if [ -z "$UV" ]; then
  "$PYTHON" -m venv "$WORK/tools"
  "$WORK/tools/bin/pip" install -q uv
  UV=$WORK/tools/bin/uv
fi
VENV=$WORK/venv
"$UV" venv -q --python "$PYTHON" "$VENV"
"$UV" pip install -q --python "$VENV/bin/python" --resolution lowest-direct .
# The test tools at their newest, not part of what is checked.
"$UV" pip install -q --python "$VENV/bin/python" pytest pytest-timeout websockets pyyaml

echo "import every module, with:"
(cd "$WORK" && "$VENV/bin/python" - <<'EOF'
import importlib
import pkgutil
import re
from importlib.metadata import requires, version

import audio_service

direct = sorted({re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0] for r in requires("audio-service") if "extra ==" not in r})
print("\n".join(f"  {name}=={version(name)}" for name in direct))

skipped = {"audio_service.scale.ray_serve"}  # the ray extra
for module in pkgutil.walk_packages(audio_service.__path__, "audio_service."):
    if module.name not in skipped:
        importlib.import_module(module.name)
print("  ok")
EOF
)
echo "command line:"
"$VENV/bin/audio-service" serve --help >/dev/null
echo "  ok"
echo "the in-process layer and the core end to end (tests/fast, tests/test_core_install.py: the work tree's code on these versions):"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/fast tests/test_core_install.py
