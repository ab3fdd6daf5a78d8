"""Content checks for model files in the cache: sha256, re-hashed only when a file changed.

Hashing a 145 MB model on every start would cost a noticeable fraction of a second, so a verified file
gets a small JSON marker with its digest, size and mtime; while those still match the file it is
trusted without reading it again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path, sha256: str) -> dict[str, object]:
    st = path.stat()
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def record_verified(path: Path, sha256: str, marker: Path) -> None:
    """Note in ``marker`` that ``path`` (as it is now) has content ``sha256``."""
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(_stamp(path, sha256)))
        os.replace(tmp, marker)
    except OSError:  # a read-only cache: the file is simply re-hashed at the next start
        tmp.unlink(missing_ok=True)


def is_verified(path: Path, sha256: str, marker: Path) -> bool:
    """Whether ``path`` exists with content ``sha256``; hashes it only if it changed since it was last verified."""
    if not path.is_file():
        return False
    try:
        if json.loads(marker.read_text()) == _stamp(path, sha256):
            return True
    except (OSError, ValueError):
        pass
    if sha256_of(path) != sha256:
        return False
    record_verified(path, sha256, marker)
    return True
