"""Where data sets are found: the given path, ``NEEDLE_DATA``, the repository's ``data/``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def _is_needle_checkout(root: Path) -> bool:
    project = root / "pyproject.toml"
    try:
        return (root / "data").is_dir() and 'name = "needle"' in project.read_text()
    except OSError:
        return False


def repo_data_dir() -> Path | None:
    """The repository's ``data/`` folder, when there is a needle checkout to find it in.

    Looked for beside the package (an editable install runs from the checkout), then in
    the current working directory and its parents (a regular install used from a clone,
    as in the README's quick start).
    """
    here = Path(__file__).resolve()
    candidates = [here.parents[3]] if len(here.parents) >= 4 else []  # data/needle/core/repo
    cwd = Path.cwd().resolve()
    candidates += [cwd, *cwd.parents]
    for root in candidates:
        if _is_needle_checkout(root):
            return root / "data"
    return None


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
