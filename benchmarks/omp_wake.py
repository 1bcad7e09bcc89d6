"""What a parallel kernel costs after the OpenMP threads have been idle for a while.

    python -m benchmarks.omp_wake              # GOMP_SPINCOUNT as needle_cpp sets it
    GOMP_SPINCOUNT=1000 python -m benchmarks.omp_wake
    python -m benchmarks.omp_wake --busy       # with a busy process on one core

Runs a 256K-element ``ewise_add`` on 2 threads, lets the calling thread do nothing
(busy-waits, as Python work between kernels does) for a gap of 5 µs to 3.2 ms, then times
the next add; prints the median and 90th-percentile time per gap. An idle OpenMP thread spins for
``GOMP_SPINCOUNT`` rounds and then sleeps: a kernel that finds it asleep waits for it to
wake, which on a virtual machine costs far more than the kernel. ``--busy`` starts a
process that keeps one core busy (the case that a long spin makes slow: a thread that
spins at a join while the one it waits for cannot run).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np

GAPS_US = (5, 20, 50, 100, 200, 400, 800, 1600, 3200)


def _burn(stop: multiprocessing.synchronize.Event) -> None:
    while not stop.is_set():
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", action="store_true", help="keep one core busy meanwhile")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    from needle_cpp import _core as c

    c.set_num_threads(2)
    n = 1 << 18
    a, out = c.alloc(n, "float32"), c.alloc(n, "float32")
    c.from_numpy(np.ones(n, np.float32), a)
    stop = multiprocessing.Event()
    hog = multiprocessing.Process(target=_burn, args=(stop,), daemon=True) if args.busy else None
    if hog is not None:
        hog.start()
    clock = time.perf_counter
    cells = []
    try:
        for gap in GAPS_US:
            times = []
            for _ in range(args.repeats):
                c.ewise_add(a, a, out)
                start = clock()
                while clock() - start < gap * 1e-6:
                    pass
                start = clock()
                c.ewise_add(a, a, out)
                times.append(clock() - start)
            times.sort()
            median, p90 = times[len(times) // 2], times[len(times) * 9 // 10]
            cells.append(f"{gap}: {median * 1e6:.0f}/{p90 * 1e6:.0f}")
    finally:
        stop.set()
        if hog is not None:
            hog.join()
    spin = os.environ.get("GOMP_SPINCOUNT", "(unset)")
    print(
        f"GOMP_SPINCOUNT={spin}{' busy core' if args.busy else ''}; "
        "median/90th percentile µs of a 256K add"
    )
    print("after a gap of (µs) -> " + ", ".join(cells))


if __name__ == "__main__":
    main()
