"""Replayed needle against PyTorch, timed in turn in one process: the ratios of issue 12.

    NEEDLE_BENCH_THREADS=2 python -m benchmarks.paired [--backend cpp] [--rounds N]
        [--cases MLP,ResNet9,...]

``pytest benchmarks`` times each implementation in its own stretch of the run, so on a
shared 2-core virtual machine one of them can land in a slow spell (another guest on the
host) and the other not: a model ratio swung by ±30% between runs minutes apart. Here the
two sides alternate call by call (needle, torch, torch, needle, ...), so both see the same
spells. Printed per case: the minimum time of each side, their ratio (the statistic of
the suite tables of ``docs/benchmarks.md``), and the median of the per-round ratios (each
round's needle call over the torch call next to it), which a slow spell moves least and
by which the report judges issue 12's targets.

The cases (:func:`cases`) are the model steps of ``benchmarks/bench_models.py`` (the same
models, batches and SGD, needle replayed through ``needle.compile``), the MNIST epoch, the
eager 512 x 512 matmul backward pass of ``benchmarks/bench_ops.py`` (its forward untimed,
as there) and the eager tiny ``a + b`` with graph recording of
``benchmarks/bench_overhead.py``. ``benchmarks/bench_paired.py`` runs the same pairs inside
``pytest benchmarks``, and the report puts them in its first table.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import _common

Setup = Callable[[], tuple[object, ...]] | None


@dataclass(frozen=True)
class Case:
    """One pair: ``key`` names it on the command line and in test ids; ``target`` is
    issue 12's bound on needle's time over PyTorch's (None: no target)."""

    key: str
    name: str
    target: float | None
    rounds: int


@functools.cache
def cases() -> tuple[Case, ...]:
    """Every case, in the report's order. (Imports the benchmark modules, whose pytest
    marks only ``benchmarks/pytest.ini`` registers: call it from there or a script.)"""
    from . import bench_models

    targets = {"MLPResNet": 1.0, "ResNet9": 1.2, "LanguageModel": 1.0, "TransformerLM": 1.2}
    models = [Case(c.attr, c.name, targets.get(c.attr), c.rounds) for c in bench_models.CASES]
    # MNIST: 10 rounds (each a whole epoch of both), twice the suite's 5, as its median
    # ratio is the case's statistic (5 rounds left it to one or two disturbed epochs)
    return (
        *models,
        Case("MNIST", f"MNIST epoch MLP 784-100-10 batch {bench_models.MNIST_BATCH}", 0.8, 10),
        Case("matmul_backward", "matmul 512x512 backward, eager", 1.2, 60),
        Case("tiny_add", "a + b, shape (4,), eager with graph recording", 2.0, 1000),
    )


TINY_INNER = 20
"""Calls of the tiny ``a + b`` per timed sample (one call is a few microseconds)."""


@dataclass
class Pair:
    """The two sides of a case, ready to call: ``setups`` are untimed calls before each
    step that return its arguments (a backward pass's forward); each timed sample runs a
    side ``inner`` times and counts the time per call."""

    ours: Callable[..., object]
    theirs: Callable[..., object]
    setups: tuple[Setup, Setup] = (None, None)
    inner: int = 1


def build(case: Case, backend: str) -> Pair:
    """Make both sides of ``case``: needle on ``backend`` and PyTorch (models built and
    warmed up, a replayed step captured)."""
    from . import bench_models, bench_ops, bench_overhead

    ours = _common.backend_impl(backend)
    theirs = _common.torch_impl()
    models = {c.attr: c for c in bench_models.CASES}
    if case.key in models:
        mc = models[case.key]
        x_np, y_np = mc.batch()
        return Pair(
            bench_models._needle_step(ours, mc, x_np, y_np, replay=True),
            bench_models._torch_step(mc, x_np, y_np),
        )
    if case.key == "MNIST":
        data = bench_models.load_mnist_train()
        return Pair(
            bench_models.mnist_epoch_fn(ours, data, replay=True),
            bench_models.mnist_epoch_fn(theirs, data, replay=False),
        )
    if case.key == "matmul_backward":
        (op,) = [c for c in bench_ops.CASES if c.name.startswith("matmul")]
        a, b = bench_ops.backward_pass(ours, op), bench_ops.backward_pass(theirs, op)
        return Pair(a.run, b.run, (a.setup, b.setup))
    if case.key == "tiny_add":
        (a1, b1), (a2, b2) = (
            bench_overhead.tiny_operands(ours),
            bench_overhead.tiny_operands(theirs),
        )
        return Pair(lambda: a1 + b1, lambda: a2 + b2, inner=TINY_INNER)
    raise ValueError(f"unknown case {case.key!r}; choose from {[c.key for c in cases()]}")


class Interleaved:
    """Times the two sides of a :class:`Pair` in turn, the order alternating every round
    so neither side always runs right after the other."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.ours: list[float] = []
        self.theirs: list[float] = []

    def _time(self, step: Callable[..., object], setup: Setup) -> float:
        args = setup() if setup is not None else ()  # not timed
        inner = self.pair.inner
        start = time.perf_counter()
        for _ in range(inner):
            step(*args)
        return (time.perf_counter() - start) / inner

    def warm_up(self, pairs: int = 2) -> None:
        """Untimed calls of each side (caches, allocators, thread pools)."""
        p = self.pair
        for _ in range(pairs):
            self._time(p.ours, p.setups[0])
            self._time(p.theirs, p.setups[1])

    def round(self) -> None:
        """One timed call of each side: needle first in odd rounds, PyTorch in even ones."""
        p = self.pair
        if len(self.ours) % 2:
            self.ours.append(self._time(p.ours, p.setups[0]))
            self.theirs.append(self._time(p.theirs, p.setups[1]))
        else:
            self.theirs.append(self._time(p.theirs, p.setups[1]))
            self.ours.append(self._time(p.ours, p.setups[0]))

    def summary(self) -> tuple[float, float, float]:
        """(needle's minimum, PyTorch's minimum, median of the per-round ratios)."""
        if not self.ours:
            raise ValueError("Interleaved.summary: no round was timed")
        ratios = [a / b for a, b in zip(self.ours, self.theirs)]
        return min(self.ours), min(self.theirs), statistics.median(ratios)


def run_pair(pair: Pair, rounds: int) -> tuple[float, float, float]:
    """Two untimed pairs, then ``rounds`` rounds (see :meth:`Interleaved.summary`)."""
    timer = Interleaved(pair)
    timer.warm_up()
    for _ in range(rounds):
        timer.round()
    return timer.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpp")
    parser.add_argument(
        "--rounds", type=int, default=0, help="rounds for every case (default: each case's own)"
    )
    parser.add_argument("--cases", default="", help="comma-separated subset (default: all)")
    args = parser.parse_args()
    _common.apply_thread_limits()  # before needle's OpenMP and PyTorch load
    keys = [c.key for c in cases()]
    wanted = [c for c in args.cases.split(",") if c] or keys
    unknown = sorted(set(wanted) - set(keys))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {keys}")
    missing = _common.backend_impl(args.backend).skip or _common.torch_impl().skip
    if missing:
        raise SystemExit(missing)
    print(f"replayed needle-{args.backend} / PyTorch eager, {_common.THREADS} threads each")
    for case in cases():
        if case.key in wanted:
            n = args.rounds or _common.rounds(case.rounds)
            _report(case, *run_pair(build(case, args.backend), n))


def _report(case: Case, ours: float, theirs: float, median_ratio: float) -> None:
    target = f"target {case.target:.1f}" if case.target is not None else "no target"
    print(
        f"{case.key:16s} {ours * 1e3:9.4f} ms {theirs * 1e3:9.4f} ms  "
        f"ratio of minima {ours / theirs:5.2f}  median ratio {median_ratio:5.2f}  ({target})"
    )


if __name__ == "__main__":
    main()
