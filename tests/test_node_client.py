"""Run the Node client's own test suite (``npm test``: it starts a real server) inside ``make test``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.audio_utils import ROOT

NODE_DIR = ROOT / "clients" / "node"


def test_node_client_suite():
    assert shutil.which("npm"), "npm is required (installed by scripts/install.sh)"
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)
    # the suite's server runs on this interpreter and this checkout
    env = {**os.environ, "AUDIO_SERVICE_PYTHON": sys.executable}
    proc = subprocess.run(["npm", "test", "--silent"], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=600)
    summary = "\n".join(line for line in proc.stdout.splitlines() if line.startswith(("# ", "not ok")))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "# pass 5" in summary and "# fail 0" in summary, summary
