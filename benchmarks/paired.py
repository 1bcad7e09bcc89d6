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
matmul backward of ``benchmarks/bench_ops.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from . import _common
from ._common import Impl


def _call(step: Callable[[], object]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def paired(
    needle_step: Callable[[], object], torch_step: Callable[[], object], rounds: int
) -> tuple[float, float, float]:
    """(needle min, torch min, median of per-round ratios) over ``rounds`` rounds, the
    order alternating every round so neither side always runs right after the other."""
    for _ in range(2):
        needle_step()
        torch_step()
    ours: list[float] = []
    theirs: list[float] = []
    for r in range(rounds):
        if r % 2:
            ours.append(_call(needle_step))
            theirs.append(_call(torch_step))
        else:
            theirs.append(_call(torch_step))
            ours.append(_call(needle_step))
    ratios = [a / b for a, b in zip(ours, theirs)]
    return min(ours), min(theirs), statistics.median(ratios)


MATMUL = _common.size(512, 16)
CASE_NAMES = ["MLP", "MLPResNet", "ResNet9", "LanguageModel", "TransformerLM"]  # bench_models


def _matmul_backward(impl: Impl, n: int = MATMUL) -> Callable[[], object]:
    """Eager ``(a @ b).backward(g)`` with fresh gradients, as bench_ops times it."""
    rng = np.random.default_rng(0)
    a, b, g = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(3))
    if impl.kind == "torch":
        import torch

        ta, tb = (torch.from_numpy(v).requires_grad_() for v in (a, b))
        tg = torch.from_numpy(g)

        def torch_step() -> None:
            ta.grad = tb.grad = None
            (ta @ tb).backward(tg)

        return torch_step
    import needle

    xa, xb = (needle.Tensor(v, device=impl.device) for v in (a, b))
    xg = needle.Tensor(g, device=impl.device, requires_grad=False)

    def needle_step() -> None:
        xa.grad = xb.grad = None
        (xa @ xb).backward(xg)

    return needle_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="cpp")
    parser.add_argument("--rounds", type=int, default=30, help="rounds per model case")
    names = [*CASE_NAMES, "MNIST", "matmul_backward"]
    parser.add_argument("--cases", default=",".join(names), help="comma-separated subset")
    args = parser.parse_args()
    _common.apply_thread_limits()  # before needle's OpenMP and PyTorch load
    from . import bench_models  # (its pytest marks need benchmarks/pytest.ini only there)

    if [c.attr for c in bench_models.CASES] != CASE_NAMES:
        raise SystemExit("benchmarks.paired: CASE_NAMES is not the cases of bench_models")

    wanted = [c for c in args.cases.split(",") if c]
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
        ours_eager = _matmul_backward(ours)
        _report(
            f"matmul {MATMUL}^2 backward (eager)",
            *paired(ours_eager, _matmul_backward(torch_impl), 4 * args.rounds),
        )


def _report(name: str, ours: float, theirs: float, median_ratio: float) -> None:
    print(
        f"{name[:40]:40s} {ours * 1e3:9.3f} ms {theirs * 1e3:9.3f} ms  "
        f"ratio of minima {ours / theirs:5.2f}  median ratio {median_ratio:5.2f}"
    )


if __name__ == "__main__":
    main()
