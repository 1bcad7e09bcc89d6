"""Quick side-by-side timing of needle-cpp kernels against NumPy for the goal cases.

Run (benchmark NumPy with its best kernels: unset the OpenBLAS overrides in this command only):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python backends/cpp_backend/bench_quick.py

Prints GFLOP/s (matmul) or GB/s (memory-bound kernels) and the ratio cpp / NumPy, best of
several repetitions, both measured in this run with the same thread count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from needle_cpp import _core as c


def compare(numpy_fn, cpp_fn, reps: int, rounds: int = 3) -> tuple[float, float]:
    """Best time of each, measured in alternating blocks of `reps` calls.

    Blocks rather than single calls, with a pause between them: OpenBLAS's idle threads
    spin for a while after each call (and libgomp's do too), which would steal the second
    core from whichever library runs next.
    """
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, fn in enumerate((numpy_fn, cpp_fn)):
            fn()
            for _ in range(reps):
                start = time.perf_counter()
                fn()
                best[i] = min(best[i], time.perf_counter() - start)
            time.sleep(0.3)
    return best[0], best[1]


def handle(x: np.ndarray):
    h = c.alloc(x.size, x.dtype.name)
    c.from_numpy(np.ascontiguousarray(x).reshape(-1), h)
    return h


def row(name: str, unit: str, amount: float, times: tuple[float, float]) -> None:
    numpy_rate, cpp_rate = amount / times[0], amount / times[1]
    ratio = cpp_rate / numpy_rate
    rates = f"numpy {numpy_rate:7.1f} {unit:<7} cpp {cpp_rate:7.1f} {unit:<7}"
    print(f"{name:<40} {rates} ratio {ratio:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=c.get_num_threads())
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    c.set_num_threads(args.threads)
    try:
        from threadpoolctl import threadpool_info

        blas = [
            f"{i['internal_api']} {i.get('architecture', '?')} x{i['num_threads']}"
            for i in threadpool_info()
            if i["user_api"] == "blas"
        ]
    except ImportError:
        blas = ["threadpoolctl not installed"]
    print(f"cpp: simd={c.simd_level()} threads={c.get_num_threads()}", end="; ")
    print(f"numpy {np.__version__} blas: {', '.join(blas)}")
    rng = np.random.default_rng(0)

    for n in (256, 1024, 2048):
        a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
        out = np.empty((n, n), np.float32)
        ha, hb, ho = handle(a), handle(b), c.alloc(n * n, "float32")
        reps = args.reps if n < 2048 else max(2, args.reps // 2)
        times = compare(
            lambda a=a, b=b, out=out: np.matmul(a, b, out=out),
            lambda ha=ha, hb=hb, ho=ho, n=n: c.matmul(ha, hb, ho, n, n, n),
            reps,
        )
        row(f"matmul f32 n={n}", "GFLOP/s", 2 * n**3 / 1e9, times)

    n = 16 * 1024 * 1024
    x, y, z = (rng.standard_normal(n, np.float32) for _ in range(3))
    hx, hy, hz = handle(x), handle(y), handle(z)
    gb = 3 * n * 4 / 1e9
    row(
        "ewise_add f32 16M (into out)",
        "GB/s",
        gb,
        compare(lambda: np.add(x, y, out=z), lambda: c.ewise_add(hx, hy, hz), args.reps),
    )
    hs = c.alloc(1, "float32")
    gb = n * 4 / 1e9
    row(
        "reduce_sum f32 16M",
        "GB/s",
        gb,
        compare(lambda: np.sum(x), lambda: c.reduce_sum(hx, hs, n), args.reps),
    )

    m = 4096
    a = rng.standard_normal((m, m), np.float32)
    ha, ho = handle(a), c.alloc(m * m, "float32")
    gb = 2 * m * m * 4 / 1e9
    row(
        "compact transpose f32 4096^2",
        "GB/s",
        gb,
        compare(
            lambda: np.ascontiguousarray(a.T),
            lambda: c.compact(ha, ho, (m, m), (1, m), 0),
            args.reps,
        ),
    )
    out = np.empty((m, m), np.float32)
    row(
        "compact transpose vs np.copyto(out,a.T)",
        "GB/s",
        gb,
        compare(
            lambda: np.copyto(out, a.T), lambda: c.compact(ha, ho, (m, m), (1, m), 0), args.reps
        ),
    )
    row(
        "compact broadcast f32 4096^2 (write)",
        "GB/s",
        gb / 2,
        compare(
            lambda: np.ascontiguousarray(np.broadcast_to(a[0], (m, m))),
            lambda: c.compact(ha, ho, (m, m), (0, 1), 0),
            args.reps,
        ),
    )


if __name__ == "__main__":
    main()
