"""Issue 12's ratios measured side by side: replayed needle-cpp and PyTorch in turn.

Every other suite times one implementation after another, each in its own stretch of the
run; on a shared 2-core virtual machine a slow spell can fall on one of them only. Here
each round calls needle, then PyTorch (or the other way round, alternating), so both see
the same machine (see ``benchmarks/paired.py``). pytest-benchmark times the rounds (a
round is both calls); each side's own times go to ``extra_info``, and the report's first
table prints them with the ratio of their minima, the median per-round ratio, and issue
12's target (judged by the median ratio).

The cases are those of ``benchmarks.paired.cases()``, needle on the C++ backend (the
issue's subject); they skip with the reason where it or PyTorch is missing.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from . import _common, paired
from ._common import Impl

BACKEND = "cpp"


@pytest.mark.parametrize("case", paired.cases(), ids=lambda c: c.key)
def bench_side_by_side(benchmark: Any, case: paired.Case, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = _common.backend_impl(BACKEND).skip or _common.torch_impl().skip
    if reason:
        pytest.skip(reason)
    # What a model builds without an explicit device lands on the backend under test.
    monkeypatch.setitem(os.environ, "NEEDLE_BACKEND", BACKEND)
    timer = paired.Interleaved(paired.build(case, BACKEND))
    n = _common.rounds(case.rounds)
    if n > 1:
        timer.warm_up()
    impl = Impl(f"needle-{BACKEND} replayed / torch", "paired", backend=BACKEND)
    _common.record(benchmark, impl, "paired", case.name, target=case.target)
    benchmark.pedantic(timer.round, rounds=n, iterations=1)
    ours, theirs, median_ratio = timer.summary()
    benchmark.extra_info.update(needle_min=ours, torch_min=theirs, median_ratio=median_ratio)
    assert len(timer.ours) == len(timer.theirs) >= 1, f"{case.key}: no round was timed"
    assert ours > 0 and theirs > 0, f"{case.key}: times {ours}, {theirs}"
