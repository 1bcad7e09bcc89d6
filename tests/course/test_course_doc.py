"""docs/course.md: every needle name it lists imports, and every row has a status."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "course.md"
STATUSES = {"identical", "renamed", "different on purpose"}
NOTES: list[str] = []  # needle names in the notes column, filled by mapping_rows()


def mapping_rows() -> list[tuple[str, str, str]]:
    """(course, needle, status) of every four-column table row under a ``## hw`` heading."""
    rows, in_hw = [], False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            in_hw = line.startswith("## hw")
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not in_hw or not line.startswith("|") or len(cells) != 4:
            continue
        if cells[0] == "course" or set(cells[0]) <= {"-"}:
            continue
        rows.append((cells[0], cells[1], cells[2]))
        NOTES.extend(names(cells[3]))
    return rows


def names(cell: str) -> list[str]:
    return re.findall(r"`(needle[\w.]*)`", cell)


def resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted``, then walk attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


ROWS = mapping_rows()
DOC_NAMES = sorted({n for _, needle, _ in ROWS for n in names(needle)})


def test_the_doc_covers_every_homework() -> None:
    text = DOC.read_text(encoding="utf-8")
    for hw in ("## hw0", "## hw1", "## hw2", "## hw3", "## hw4"):
        assert hw in text
    assert len(ROWS) > 100


@pytest.mark.parametrize("course, needle, status", ROWS, ids=[r[0] for r in ROWS])
def test_every_row_is_marked(course: str, needle: str, status: str) -> None:
    assert status in STATUSES, f"{course}: status {status!r}"
    if status != "different on purpose":
        assert names(needle), f"{course}: an {status} row must name the needle equivalent"


@pytest.mark.parametrize("name", DOC_NAMES)
def test_every_listed_name_imports(name: str) -> None:
    resolve(name)


@pytest.mark.parametrize("name", sorted(set(NOTES)))
def test_every_name_in_the_notes_imports_too(name: str) -> None:
    """Names mentioned in the notes column (``needle.add``...) exist as well."""
    resolve(name)
