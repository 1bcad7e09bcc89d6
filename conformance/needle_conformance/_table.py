"""Counting outcomes by area, and the table that shows them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

AREAS = (
    "kernels",
    "ndarray",
    "dlpack",
    "ops_forward",
    "ops_gradient",
    "higher_order",
    "errors",
    "modules",
)
"""The suite's areas; each is the module ``needle_conformance/test_<area>.py`` and any
``test_<area>_<part>.py`` beside it."""

OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")

# Node ids carry the package folder in an editable install, but are bare
# ("test_kernels.py::...") when the suite runs from site-packages via --pyargs.
# An area may span several modules: test_kernels.py, test_kernels_semantics.py...
_MODULE = re.compile(
    r"(?:^|needle_conformance/)test_(" + "|".join(AREAS) + r")(?:_[a-z]+)?\.py::(.*)$"
)


def _split(nodeid: str) -> tuple[str, str] | None:
    m = _MODULE.search(nodeid.replace("\\", "/"))
    return (m.group(1), m.group(2)) if m else None


def is_conformance_item(item: Any) -> bool:
    """Whether a collected pytest item belongs to the suite."""
    return _split(item.nodeid) is not None


def area_of(item_or_nodeid: Any) -> str:
    """The area of an item or node id (``kernels``, ``ops_forward``...)."""
    nodeid = getattr(item_or_nodeid, "nodeid", item_or_nodeid)
    parts = _split(nodeid)
    return parts[0] if parts else ""


def stable_id(item_or_nodeid: Any) -> str:
    """``AREA::TEST[PARAMS]``: a test's id independent of where the suite is installed.

    This is what ``--needle-xfail`` patterns match, for example
    ``kernels::test_ewise_binary[ewise_add-*]``.
    """
    nodeid = getattr(item_or_nodeid, "nodeid", item_or_nodeid)
    parts = _split(nodeid)
    return f"{parts[0]}::{parts[1]}" if parts else nodeid


@dataclass
class Failure:
    """One failed test: its stable id, its area and the text pytest reported."""

    test: str
    area: str
    message: str


@dataclass
class Table:
    """Outcome counts per area, plus the failures (for reports and the meta-tests)."""

    areas: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    fallback: dict[str, int] = field(default_factory=dict)
    """Per area: passed tests that ran a kernel through ``NEEDLE_FALLBACK`` (NumPy)."""

    def add(self, area: str, outcome: str) -> None:
        counts = self.areas.setdefault(area, dict.fromkeys(OUTCOMES, 0))
        counts[outcome] += 1

    def record(self, report: Any) -> None:
        """Count a pytest ``TestReport`` (ignored unless it belongs to the suite)."""
        area = area_of(report.nodeid)
        if not area:
            return
        xfail = hasattr(report, "wasxfail")
        outcome = None
        if report.when == "call":
            if report.passed:
                outcome = "xpassed" if xfail else "passed"
            elif report.failed:
                outcome = "failed"
            else:
                outcome = "xfailed" if xfail else "skipped"
        elif report.when == "setup":
            if report.failed:
                outcome = "error"
            elif report.skipped:
                outcome = "xfailed" if xfail else "skipped"
        elif report.failed:  # teardown
            outcome = "error"
        if outcome is None:
            return
        self.add(area, outcome)
        if outcome == "passed" and any(
            key == "needle_fallback" for key, _ in getattr(report, "user_properties", ())
        ):
            self.fallback[area] = self.fallback.get(area, 0) + 1
        if outcome in ("failed", "error"):
            self.failures.append(
                Failure(stable_id(report.nodeid), area, report.longreprtext[-4000:])
            )

    def total(self, outcome: str) -> int:
        return sum(c[outcome] for c in self.areas.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "areas": self.areas,
            "failures": [f.__dict__ for f in self.failures],
            "fallback": self.fallback,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Table:
        return cls(
            {a: dict(c) for a, c in data.get("areas", {}).items()},
            [Failure(**f) for f in data.get("failures", [])],
            dict(data.get("fallback", {})),
        )

    def __str__(self) -> str:
        return summary(self)


def summary(table: Table) -> str:
    """The per-area table: one row per area, one column per outcome, and a total row."""
    order = [a for a in AREAS if a in table.areas] + sorted(set(table.areas) - set(AREAS))
    head = ["area", *OUTCOMES, "total"]
    rows = []
    for area in order:
        counts = table.areas[area]
        rows.append([area, *(str(counts[o]) for o in OUTCOMES), str(sum(counts.values()))])
    totals = [table.total(o) for o in OUTCOMES]
    rows.append(["total", *(str(t) for t in totals), str(sum(totals))])
    if table.fallback:  # passed, but only through NEEDLE_FALLBACK's NumPy kernels
        head.append("via fallback")
        for row in rows:
            n = sum(table.fallback.values()) if row[0] == "total" else table.fallback.get(row[0])
            row.append(str(n or 0))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        )

    out = [line(head), line(["-" * w for w in widths])]
    out += [line(r) for r in rows[:-1]]
    out += [line(["-" * w for w in widths]), line(rows[-1])]
    return "\n".join(out)
