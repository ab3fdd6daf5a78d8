"""A throw-away venv holding only what pyproject.toml's main dependency list (and the extras asked for) installs.

Installing it for real would take ~7 GB and many minutes, so the venv's site-packages is made of
symlinks into the test venv, one per file or directory of each distribution in the transitive closure
of ``[project].dependencies`` (markers and extras honoured). Whatever else the test venv has (the dev
extra, packages other branches still install) cannot be imported from it.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.audio_utils import ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _closure(requirements: list[str]) -> set[str]:
    """Installed distributions (canonical names) the requirements pull in, recursively."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, parent_extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": parent_extra}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        for raw in dist.requires or []:
            sub = Requirement(raw)
            for extra in ("", *req.extras):  # a requirement that needs an extra of this one counts too
                if sub.marker is None or sub.marker.evaluate({"extra": extra}):
                    todo.append((sub, extra))
                    break
    return seen


def declared_dependencies(extras: tuple[str, ...] = ()) -> set[str]:
    """The canonical names of every distribution the main dependency list and ``extras`` install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project.get("optional-dependencies", {})
    return _closure([*project["dependencies"], *(r for extra in extras for r in optional[extra])])


def make_declared_venv(directory: Path, extras: tuple[str, ...] = ()) -> Path:
    """Create the venv in ``directory`` with the main list and ``extras``; return its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True, timeout=120)
    source = Path(sysconfig.get_paths()["purelib"])
    target = directory / source.relative_to(sys.prefix)
    wanted = declared_dependencies(extras)
    entries: set[str] = set()
    for dist in metadata.distributions(path=[str(source)]):
        if canonicalize_name(dist.metadata["Name"]) in wanted:
            entries.update(f.parts[0] for f in dist.files or () if f.parts[0] != "..")
    for entry in sorted(entries):
        if (source / entry).exists():
            (target / entry).symlink_to(source / entry)
    return directory / "bin" / "python"
