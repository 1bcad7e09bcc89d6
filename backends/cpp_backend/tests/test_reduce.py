"""reduce_sum, reduce_max, reduce_argmax, logsumexp_last, softmax_last against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from cpp_test_utils import get, put, rand
from hypothesis import given, settings
from hypothesis import strategies as st
from needle.backends import KERNELS

ROWS = [(1, 1), (3, 1), (1, 17), (5, 33), (7, 1000), (1, 600_003), (3, 300_001), (3000, 65)]


def close(dtype: str, n: int = 1) -> dict:
    # sums of n float32 terms: NumPy's pairwise sum and ours differ by rounding only
    return (
        {"rtol": 1e-5, "atol": 1e-5 * np.sqrt(n)}
        if dtype == "float32"
        else {"rtol": 1e-11, "atol": 1e-11 * np.sqrt(n)}
    )


@pytest.mark.parametrize("rows,size", ROWS)
def test_reduce_sum(core, simd, dtype, rows, size):
    x = rand((rows, size), dtype)
    out = core.alloc(rows, dtype)
    core.reduce_sum(put(x), out, size)
    want = KERNELS["reduce_sum"].reference(x.astype(np.float64))
    np.testing.assert_allclose(get(out), want, **close(dtype, size))


def test_reduce_sum_empty_rows(core, dtype):
    out = core.alloc(4, dtype)
    core.reduce_sum(core.alloc(0, dtype), out, 0)
    np.testing.assert_array_equal(get(out), np.zeros(4, dtype))
    core.reduce_sum(core.alloc(0, dtype), core.alloc(0, dtype), 5)  # no rows: nothing to do


@pytest.mark.parametrize("rows,size", ROWS)
def test_reduce_max(core, simd, dtype, rows, size):
    x = rand((rows, size), dtype)
    out = core.alloc(rows, dtype)
    core.reduce_max(put(x), out, size)
    np.testing.assert_array_equal(get(out), KERNELS["reduce_max"].reference(x))


@pytest.mark.parametrize("size", [1, 5, 100, 300_001])
def test_reduce_max_nan_and_inf(core, simd, dtype, size):
    x = np.full((3, size), -np.inf, dtype)
    x[1, size // 2] = np.nan
    x[2, -1] = 7.0
    out = core.alloc(3, dtype)
    core.reduce_max(put(x), out, size)
    np.testing.assert_array_equal(get(out), KERNELS["reduce_max"].reference(x))


@pytest.mark.parametrize("rows,size", [(1, 1), (4, 7), (50, 129)])
def test_reduce_argmax(core, dtype, rows, size):
    x = np.round(rand((rows, size), dtype), 1)  # ties: the first maximum wins
    x[0, -1] = np.nan if size > 2 else x[0, -1]
    out = core.alloc(rows, dtype)
    core.reduce_argmax(put(x), out, size)
    np.testing.assert_array_equal(get(out), KERNELS["reduce_argmax"].reference(x))


@pytest.mark.parametrize("rows,size", [(1, 1), (4, 7), (50, 129), (3, 0), (2, 3001)])
def test_logsumexp_last(core, dtype, rows, size):
    x = rand((rows, size), dtype) * 30
    if size:
        x[0, :] = -np.inf  # max is -inf: -inf
        x[-1, 0] = np.inf if rows > 1 else x[-1, 0]
    out = core.alloc(rows, dtype)
    core.logsumexp_last(put(x), out, size)
    want = KERNELS["logsumexp_last"].reference(x.astype(np.float64)).astype(dtype)
    np.testing.assert_allclose(get(out), want, rtol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("rows,size", [(1, 1), (4, 7), (50, 129), (2, 3001)])
def test_softmax_last(core, dtype, rows, size):
    x = rand((rows, size), dtype) * 30
    out = core.alloc(rows * size, dtype)
    core.softmax_last(put(x), out, size)
    want = KERNELS["softmax_last"].reference(x.astype(np.float64))
    np.testing.assert_allclose(
        get(out, (rows, size)), want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-7
    )


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(0, 40), size=st.integers(1, 300), dtype=st.sampled_from(["float32", "float64"])
)
def test_reductions_sweep(rows, size, dtype):
    from needle_cpp import _core

    x = rand((rows, size), dtype)
    out = _core.alloc(rows, dtype)
    _core.reduce_sum(put(x), out, size)
    want = KERNELS["reduce_sum"].reference(x.astype(np.float64))
    np.testing.assert_allclose(get(out), want, **close(dtype, size))
    _core.reduce_max(put(x), out, size)
    np.testing.assert_array_equal(get(out), KERNELS["reduce_max"].reference(x))
