"""needle-cpp: the C++ array backend for needle.

The plugin module is :mod:`needle_cpp.plugin` (found through the ``needle.backends`` entry
point). The kernels live in the compiled module :mod:`needle_cpp._core`, imported lazily:
``import needle_cpp`` stays cheap, and ``needle_cpp.kernels()`` loads them.
"""

from __future__ import annotations

import os
from types import ModuleType

SPIN_COUNT = "30000"
"""GOMP_SPINCOUNT set before the compiled module loads libgomp, unless the user chose one.

An idle OpenMP thread spins this many rounds, then sleeps; a kernel that finds it asleep
waits for it to wake. libgomp's default, 300000 rounds (about 15 ms on an AMD EPYC VM),
made a 100K-element add take 8 ms instead of 10 us whenever another process held one of
the two cores (a thread spun at every join while the one it waited for could not run).
1000 rounds (about 10 us on an Intel Xeon VM) bounded that, but then every kernel after a
Python gap of more than a few microseconds (between training steps, between eager ops)
woke a sleeping thread: on a VM that costs more than the kernel (a 256K-element add took
24-39 us right after the previous one, 52 us after a 50 us gap: ``python -m
benchmarks.omp_wake``), and replayed MNIST epochs were slower (docs/performance.md has the
runs). 30000 rounds (a few hundred microseconds) cover the gaps of a training loop; on a
machine with a busy core they cost tail latency (``python -m benchmarks.omp_wake --busy``:
90th percentile 1.5 ms against 0.17 ms at 1000), far less than libgomp's default. Set
OMP_WAIT_POLICY or GOMP_SPINCOUNT yourself to override; it has no effect if libgomp was
already loaded by another extension.
"""
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT

__version__ = "0.1.0"
__all__ = ["SPIN_COUNT", "__version__", "kernels"]


def kernels() -> ModuleType:
    """Import and return the compiled kernel module ``needle_cpp._core``."""
    from . import _core

    return _core
