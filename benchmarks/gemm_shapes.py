"""The products of the training-step benchmarks, one kernel call each: needle-cpp or torch.

    OMP_NUM_THREADS=1 python -m benchmarks.gemm_shapes cpp 1
    OMP_NUM_THREADS=1 python -m benchmarks.gemm_shapes torch 1

Run each side in its own process (two OpenMP runtimes in one process disturb each
other). Prints the minimum time per call, in microseconds, of ``m x n x p`` products with
the operands stored as ``matmul_t`` reads them (``t10``: a stored transposed, ``t01``: b
stored transposed): the MLP 784-100-10 at batch 128, an LSTM of hidden size 128 at batch
32 over 20 steps, a 1000-word decoder, and the 512 x 512 products of the matmul backward
benchmark.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable

import numpy as np

SHAPES = [
    (128, 784, 100, 0, 0),
    (128, 100, 10, 0, 0),
    (784, 128, 100, 1, 0),
    (100, 128, 10, 1, 0),
    (128, 10, 100, 0, 1),
    (128, 100, 784, 0, 1),
    (640, 128, 512, 0, 0),
    (32, 128, 512, 0, 0),
    (128, 640, 512, 1, 0),
    (640, 512, 128, 0, 1),
    (640, 128, 1000, 0, 0),
    (128, 640, 1000, 1, 0),
    (640, 1000, 128, 0, 1),
    (512, 512, 512, 0, 0),  # the matmul backward benchmark: a @ b, g @ b.T, a.T @ g
    (512, 512, 512, 0, 1),
    (512, 512, 512, 1, 0),
]


def best_us(f: Callable[[], object], n: int = 200) -> float:
    f()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            f()
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["cpp", "torch"], help="whose products to time")
    parser.add_argument("threads", type=int, help="threads for them")
    args = parser.parse_args()
    which, threads = args.which, args.threads
    if which == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        from needle_cpp import _core as c

        c.set_num_threads(threads)
    rng = np.random.default_rng(0)
    for m, n, p, ta, tb in SHAPES:
        a_np = rng.standard_normal((n, m) if ta else (m, n), dtype=np.float32)
        b_np = rng.standard_normal((p, n) if tb else (n, p), dtype=np.float32)
        if which == "torch":
            at, bt = torch.from_numpy(a_np), torch.from_numpy(b_np)
            a_op, b_op = (at.T if ta else at), (bt.T if tb else bt)
            t = best_us(functools.partial(torch.mm, a_op, b_op, out=torch.empty(m, p)))
        else:
            a, b, out = (
                c.alloc(m * n, "float32"),
                c.alloc(n * p, "float32"),
                c.alloc(m * p, "float32"),
            )
            c.from_numpy(a_np.reshape(-1), a)
            c.from_numpy(b_np.reshape(-1), b)
            t = best_us(functools.partial(c.matmul_t, a, b, out, m, n, p, ta, tb))
        print(f"{m}x{n}x{p} t{ta}{tb}: {t:.1f} us")


if __name__ == "__main__":
    main()
