"""Shared fixtures: the compiled module, dtypes, SIMD levels and buffer helpers."""

from __future__ import annotations

import numpy as np
import pytest
from needle_cpp import _core

DTYPES = ["float32", "float64"]
LEVELS = ["scalar", "avx2", "avx512"]
_RANK = {name: i for i, name in enumerate(LEVELS)}


@pytest.fixture
def core():
    """The compiled kernel module."""
    return _core


@pytest.fixture(params=DTYPES)
def dtype(request) -> str:
    return request.param


@pytest.fixture(params=LEVELS)
def simd(request):
    """Run the test once per instruction set this CPU supports, then restore the best."""
    best = _core.best_simd_level()
    if _RANK[request.param] > _RANK[best]:
        pytest.skip(f"CPU lacks {request.param}")
    _core.set_simd_level(request.param)
    yield request.param
    _core.set_simd_level(best)


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
