"""compose.yaml offers a GPU and a CPU service. The Dockerfile is linted by hadolint in ``make check``; no Docker
engine runs in CI, so the image itself is not built here."""

from __future__ import annotations

import yaml

from tests.audio_utils import ROOT


def test_compose_has_gpu_and_cpu_services():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    gpu, cpu = compose["services"]["audio-service"], compose["services"]["audio-service-cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert cpu["build"]["args"]["BASE_IMAGE"].startswith("python:")
    assert "models" in compose["volumes"]
