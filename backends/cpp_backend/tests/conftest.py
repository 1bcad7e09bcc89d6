"""Shared fixtures: the compiled module, dtypes, SIMD levels and buffer helpers."""

from __future__ import annotations

import pytest
from cpp_test_utils import DTYPES, LEVELS
from needle_cpp import _core

_RANK = {name: i for i, name in enumerate(LEVELS)}


@pytest.fixture
def core():
    """The kernel table the plugin hands needle: the compiled module plus the DLPack
    kernels written in Python (needle_cpp.dlpack)."""
    from needle_cpp import dlpack

    return dlpack.install(_core)


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
