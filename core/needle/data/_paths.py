"""Where data sets are found: the given path, ``NEEDLE_DATA``, the repository's ``data/``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def repo_data_dir() -> Path | None:
    """The repository's ``data/`` folder, when needle runs from its repository.

    That is the documented default for an editable or in-tree install: the package is
    ``<repo>/core/needle``, so the data is ``<repo>/data``. An installed copy (in
    site-packages) has no repository beside it and returns None: point ``NEEDLE_DATA``
    or a ``root=`` argument at the data instead. The working directory is never searched.
    """
    package = Path(__file__).resolve().parent.parent  # <repo>/core/needle
    if package.name != "needle" or package.parent.name != "core":
        return None
    data = package.parent.parent / "data"
    return data if data.is_dir() else None


def candidate_dirs(name: str, root: str | os.PathLike[str] | None) -> list[Path]:
    """Folders to search for data set ``name``, in lookup order."""
    bases: list[Path] = []
    if root is not None:
        bases.append(Path(root))
    env = os.environ.get("NEEDLE_DATA")
    if env:
        bases.append(Path(env))
    repo = repo_data_dir()
    if repo is not None:
        bases.append(repo)
    out: list[Path] = []
    for base in bases:
        for d in (base, base / name):
            if d not in out:
                out.append(d)
    return out


def find_data_dir(
    name: str, files: Sequence[str], root: str | os.PathLike[str] | None = None, hint: str = ""
) -> Path:
    """The first candidate folder that holds every one of ``files``.

    Raises:
        FileNotFoundError: none does; the message lists the folders tried and how to
            provide the files.
    """
    tried = candidate_dirs(name, root)
    for d in tried:
        if all((d / f).is_file() for f in files):
            return d
    listing = "\n  ".join(str(d) for d in tried) or "(none: no path given, NEEDLE_DATA unset)"
    raise FileNotFoundError(
        f"{name}: data files {list(files)} not found. Tried:\n  {listing}\n"
        f"Pass the folder as root=..., or set NEEDLE_DATA to a folder that holds "
        f"{name}/ with these files.{' ' + hint if hint else ''}"
    )
