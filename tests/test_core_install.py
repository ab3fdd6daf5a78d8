"""The transcription core works without the optional extras (``pip install audio-service``, no torch).

The server runs in a subprocess whose import machinery hides the extras' packages, as if they were
not installed (`sitecustomize.py` below): it starts on the default settings, transcribes, and a request
for a feature whose extra is missing gets a 400 (batch) or an error and close 1003 (stream) naming it.
`scripts/check_lower_bounds.sh` runs this file on a real core-only install.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import httpx
import pytest
import websockets

from audio_service.errors import FeatureNotInstalledError
from audio_service.extras import FEATURES, Feature, require
from audio_service.streaming.protocol import close_code_for
from tests.audio_utils import ROOT
from tests.http_utils import jfk_file, post
from tests.server import ServerProcess
from tests.stream_client import expect_close, url_for

# The extras' packages (top-level import names and distribution names) and what only they bring in.
HIDDEN = (
    "torch torchaudio torchcodec torchvision torchmetrics pyannote resemblyzer lightning pytorch_lightning "
    "lightning_fabric omegaconf librosa webrtcvad asteroid_filterbanks speechbrain ray"
).split()

# Wraps every finder on sys.meta_path so that a hidden package is found nowhere (`import torch` raises
# ModuleNotFoundError, importlib.util.find_spec returns None) and has no installed distribution
# (importlib.metadata), exactly as on an install without the extras.
SITECUSTOMIZE = f"""
import re
import sys

HIDDEN = set({HIDDEN!r})


def _hidden(name):
    return name.split(".")[0] in HIDDEN


def _dist_hidden(dist):
    name = re.sub(r"[-_.]+", "_", (dist.metadata["Name"] or "").lower())
    return any(name == h or name.startswith(h + "_") for h in HIDDEN)


class Hiding:
    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if _hidden(name) or not hasattr(self._finder, "find_spec"):
            return None
        return self._finder.find_spec(name, path, target)

    def find_distributions(self, *args, **kwargs):
        found = getattr(self._finder, "find_distributions", None)
        return [] if found is None else [d for d in found(*args, **kwargs) if not _dist_hidden(d)]

    def invalidate_caches(self):
        if hasattr(self._finder, "invalidate_caches"):
            self._finder.invalidate_caches()


sys.meta_path[:] = [Hiding(f) for f in sys.meta_path]
"""

INSTALL_HINT = "pip install 'audio-service[diarization]'"


@pytest.fixture(scope="module")
def hook(tmp_path_factory):
    path = tmp_path_factory.mktemp("core_only")
    (path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return path


@pytest.fixture(scope="module")
def core(hook, tmp_path_factory):
    """The server on its default settings, with the extras hidden."""
    log = tmp_path_factory.mktemp("core_server") / "server.log"
    with ServerProcess(log_path=log, extra_env={"PYTHONPATH": str(hook)}) as srv:
        yield srv


def test_the_hook_hides_the_extras(hook) -> None:
    """The test's premise: under the hook, torch and pyannote cannot be imported nor found."""
    code = (
        "import importlib.metadata as m, importlib.util as u\n"
        "assert u.find_spec('torch') is None and u.find_spec('ray') is None\n"
        "try:\n    import pyannote.audio\nexcept ModuleNotFoundError:\n    pass\n"
        "else:\n    raise SystemExit('pyannote imported')\n"
        "try:\n    m.version('torch')\nexcept m.PackageNotFoundError:\n    print('hidden')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "hidden", proc.stdout + proc.stderr


def test_require_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(FEATURES, "telepathy", Feature("mind", ("no_such_module_anywhere",), "Telepathy"))
    with pytest.raises(FeatureNotInstalledError) as info:
        require("telepathy", param="think")
    error = info.value
    assert (error.status_code, error.code, error.param) == (400, "feature_not_installed", "think")
    assert "pip install 'audio-service[mind]'" in error.message
    assert close_code_for(error) == 1003  # on a stream: the close code of every unsupported request


def test_health_lists_no_optional_feature(core) -> None:
    body = httpx.get(f"{core.base_url}/health").json()
    assert body == {
        "status": "ok",
        "features": {"diarization": False, "pyannote_vad": False, "mms_alignment": False, "ray": False},
    }


def test_core_transcribes(core) -> None:
    r = post(core, jfk_file(), data={"response_format": "verbose_json", "timestamp_granularities": "word"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "ask not what your country can do for you" in body["text"].lower()
    assert body["words"], body  # Whisper's word timing needs no extra


@pytest.mark.parametrize(
    "data, param",
    [
        ({"diarize": "true", "response_format": "verbose_json", "timestamp_granularities": "word"}, "diarize"),
        ({"vad_model": "whisperx-pyannet"}, "vad_model"),
    ],
    ids=["diarize", "pyannote-vad"],
)
def test_missing_extra_is_named(core, data, param) -> None:
    r = post(core, jfk_file(), data=data)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "feature_not_installed" and error["param"] == param
    assert error["type"] == "invalid_request_error" and INSTALL_HINT in error["message"]


def test_diarized_stream_is_closed_naming_the_extra(core) -> None:
    async def go():
        async with websockets.connect(url_for(core.ws_url, language="en", diarize="true")) as ws:
            return await expect_close(ws)

    errors, code = asyncio.run(go())
    assert code == 1003
    assert errors[0]["code"] == "feature_not_installed" and INSTALL_HINT in errors[0]["message"]


def test_prepare_models_skips_the_pyannote_checkpoint(hook, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIO_SERVICE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(hook), str(ROOT)])
    proc = subprocess.run(
        [sys.executable, "-m", "audio_service", "prepare-models", "--models.preload", '["whisper-tiny.en"]'],
        cwd=ROOT,
        env={**env, "AUDIO_SERVICE_MODELS__CACHE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "whisper-tiny.en: ready" in proc.stdout
    assert f"pyannote segmentation: skipped (the diarization extra is not installed: {INSTALL_HINT})" in proc.stdout
    assert not (tmp_path / "pyannote-segmentation").exists()
