"""Buffer helpers for the C++ kernel tests (a module of its own, not conftest, so
that it imports the same way under pytest's importlib mode from any rootdir)."""

from __future__ import annotations

import numpy as np
from needle_cpp import _core

DTYPES = ["float32", "float64"]
LEVELS = ["scalar", "avx2", "avx512"]


def put(x: np.ndarray, dtype: str | None = None):
    """A new handle holding x (flattened, row-major)."""
    x = np.asarray(x, dtype=dtype or x.dtype)
    h = _core.alloc(x.size, x.dtype.name)
    _core.from_numpy(np.ascontiguousarray(x).reshape(-1), h)
    return h


def get(h, shape=None) -> np.ndarray:
    """A NumPy copy of handle h, reshaped."""
    flat = _core.to_numpy(h, (h.size,), (1,), 0)
    return flat if shape is None else flat.reshape(shape)


def rand(shape, dtype: str, rng: np.random.Generator | None = None) -> np.ndarray:
    rng = rng or np.random.default_rng(0)
    return rng.standard_normal(shape).astype(dtype)


def tol(dtype: str) -> dict:
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-12, "atol": 1e-12}
