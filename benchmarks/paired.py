"""Replayed needle against PyTorch, timed in turn in one process: the ratios of issue 12.

    NEEDLE_BENCH_THREADS=2 python -m benchmarks.paired [--backend cpp] [--rounds 30]
        [--cases MLP,ResNet9,...]

``pytest benchmarks`` times each implementation in its own stretch of the run, so on a
shared 2-core virtual machine one of them can land in a slow spell (another guest on the
host) and the other not: a model ratio swung by ±30% between runs minutes apart. Here the
two steps alternate call by call (needle, torch, torch, needle, ...), so both see the same
spells. Printed per case: the minimum time of each side, their ratio (the statistic of
``docs/benchmarks.md``), and the median of the per-round ratios (each round's needle call
over the torch call next to it), which a slow spell moves least.

The cases are the model steps of ``benchmarks/bench_models.py`` (the same models, batches
and SGD), the MNIST epoch (fewer rounds: each is a whole epoch) and the eager 512 x 512
matmul backward pass of ``benchmarks/bench_ops.py`` (its forward untimed, as there).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from . import _common
from ._common import Impl

Setup = Callable[[], tuple[object, ...]] | None


def _call(step: Callable[..., object], setup: Setup) -> float:
    args = setup() if setup is not None else ()  # not timed
    start = time.perf_counter()
    step(*args)
    return time.perf_counter() - start


def paired(
    needle_step: Callable[..., object],
    torch_step: Callable[..., object],
    rounds: int,
    setups: tuple[Setup, Setup] = (None, None),
) -> tuple[float, float, float]:
    """(needle min, torch min, median of per-round ratios) over ``rounds`` rounds, the
    order alternating every round so neither side always runs right after the other.
    ``setups``: for each side, an untimed call before every step that returns its
    arguments (a backward pass's forward)."""
    ours_setup, theirs_setup = setups
    for _ in range(2):
        _call(needle_step, ours_setup)
        _call(torch_step, theirs_setup)
    ours: list[float] = []
    theirs: list[float] = []
    for r in range(rounds):
        if r % 2:
            ours.append(_call(needle_step, ours_setup))
            theirs.append(_call(torch_step, theirs_setup))
        else:
            theirs.append(_call(torch_step, theirs_setup))
            ours.append(_call(needle_step, ours_setup))
    ratios = [a / b for a, b in zip(ours, theirs)]
    return min(ours), min(theirs), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpp")
    parser.add_argument("--rounds", type=int, default=30, help="rounds per model case")
    parser.add_argument("--cases", default="", help="comma-separated subset (default: all)")
    args = parser.parse_args()
    _common.apply_thread_limits()  # before needle's OpenMP and PyTorch load
    from . import bench_models, bench_ops  # (their pytest marks: benchmarks/pytest.ini)

    names = [c.attr for c in bench_models.CASES] + ["MNIST", "matmul_backward"]
    wanted = [c for c in args.cases.split(",") if c] or names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {names}")

    torch_impl = _common.torch_impl()
    if torch_impl.skip:
        raise SystemExit(torch_impl.skip)
    ours = Impl(f"needle-{args.backend}", "needle", backend=args.backend)
    print(f"replayed needle-{args.backend} / PyTorch eager, {_common.THREADS} threads each")
    for case in bench_models.CASES:
        if case.attr not in wanted:
            continue
        x_np, y_np = case.batch()
        ours_step = bench_models._needle_step(ours, case, x_np, y_np, replay=True)
        torch_step = bench_models._torch_step(case, x_np, y_np)
        _report(case.name, *paired(ours_step, torch_step, args.rounds))
    if "MNIST" in wanted:
        data = bench_models.load_mnist_train()
        _report(
            "MNIST epoch",
            *paired(
                bench_models.mnist_epoch_fn(ours, data, replay=True),
                bench_models.mnist_epoch_fn(torch_impl, data, replay=False),
                max(5, args.rounds // 3),
            ),
        )
    if "matmul_backward" in wanted:
        (op,) = [c for c in bench_ops.CASES if c.name.startswith("matmul")]
        a, b = bench_ops.backward_pass(ours, op), bench_ops.backward_pass(torch_impl, op)
        name = f"{op.name.split(' @')[0]} backward (eager)"
        _report(name, *paired(a.run, b.run, 4 * args.rounds, (a.setup, b.setup)))


def _report(name: str, ours: float, theirs: float, median_ratio: float) -> None:
    print(
        f"{name[:40]:40s} {ours * 1e3:9.3f} ms {theirs * 1e3:9.3f} ms  "
        f"ratio of minima {ours / theirs:5.2f}  median ratio {median_ratio:5.2f}"
    )


if __name__ == "__main__":
    main()
