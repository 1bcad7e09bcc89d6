"""needle-cpp: the C++ array backend for needle.

The plugin module is :mod:`needle_cpp.plugin` (found through the ``needle.backends`` entry
point). The kernels live in the compiled module :mod:`needle_cpp._core`, imported lazily:
``import needle_cpp`` stays cheap, and ``needle_cpp.kernels()`` loads them.
"""

from __future__ import annotations

import os
from types import ModuleType

SPIN_COUNT = "1000"
"""GOMP_SPINCOUNT set before the compiled module loads libgomp, unless the user chose one.

libgomp's idle threads spin 300000 times (about 15 ms here) before they sleep. When another
process holds one of the cores, a kernel's thread then waits out that spin at every join
while the thread it waits for cannot run: a 100K-element add took 8 ms instead of 10 us.
1000 spins (about 50 us) keep back-to-back kernels fast and bound that loss. Set
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
