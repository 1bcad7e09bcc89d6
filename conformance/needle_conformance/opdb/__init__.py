"""The op database: one :class:`OpInfo` record per op of ``needle.ops``.

Generic tests (``test_ops_forward``, ``test_ops_gradient``, ``test_errors``) run every
record on every sample and every dtype, so a new op gets full coverage by adding its
record to a family module below. A record whose op is missing from ``needle.ops`` fails
its own tests with "needle.ops has no NAME" (a visible gap) and leaves the rest alone.
"""

from __future__ import annotations

from . import elementwise, fused, linalg, reductions, shape
from ._core import KINDS, LAYOUTS, Built, ErrorInput, OpInfo, SampleInput, T, build, ids

OP_DB: list[OpInfo] = [
    *elementwise.RECORDS,
    *reductions.RECORDS,
    *shape.RECORDS,
    *linalg.RECORDS,
    *fused.RECORDS,
]
"""Every record, in a stable order."""


def get(name: str) -> OpInfo:
    """The record named ``name`` (``KeyError`` listing the names otherwise)."""
    for rec in OP_DB:
        if rec.name == name:
            return rec
    raise KeyError(f"no op record {name!r}; known: {', '.join(r.name for r in OP_DB)}")


__all__ = [
    "KINDS",
    "LAYOUTS",
    "OP_DB",
    "Built",
    "ErrorInput",
    "OpInfo",
    "SampleInput",
    "T",
    "build",
    "get",
    "ids",
]
