"""Element-wise, scalar and unary kernels against NumPy, every instruction set."""

from __future__ import annotations

import numpy as np
import pytest
from cpp_test_utils import get, put, rand, tol
from hypothesis import given, settings
from hypothesis import strategies as st
from needle.backends import KERNELS, kernels_in_family

# op name -> the contract's NumPy reference (KernelSpec.reference), e.g. "add" -> np.add
BINARY = {s.name.removeprefix("ewise_"): s.reference for s in kernels_in_family("ewise_binary")}
UNARY = {s.name.removeprefix("ewise_"): s.reference for s in kernels_in_family("ewise_unary")}
SPECIAL = [0.0, -0.0, 1.0, -1.5, np.inf, -np.inf, np.nan, 2.0]
SIZES = [0, 1, 15, 17, 1001, 300_001]  # odd sizes: vector tails; the last one runs threaded


def operands(n: int, dtype: str):
    rng = np.random.default_rng(n)
    a, b = rand(n, dtype, rng), rand(n, dtype, rng)
    k = min(n, len(SPECIAL))
    a[:k] = SPECIAL[:k]
    b[:k] = SPECIAL[::-1][:k]
    if n > 20:
        b[10:20] = a[10:20]  # equal pairs for the comparisons
    return a, b


def reference(fn, *args, dtype):
    with np.errstate(all="ignore"):
        return fn(*args).astype(dtype)


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("n", SIZES)
def test_ewise_binary(core, simd, dtype, name, n):
    a, b = operands(n, dtype)
    out = core.alloc(n, dtype)
    getattr(core, f"ewise_{name}")(put(a), put(b), out)
    np.testing.assert_allclose(
        get(out), reference(BINARY[name], a, b, dtype=dtype), equal_nan=True, **tol(dtype)
    )


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("value", [0.1, -2.0, 0.0, float("nan")])
def test_scalar_binary(core, simd, dtype, name, value):
    a, _ = operands(1001, dtype)
    out = core.alloc(a.size, dtype)
    getattr(core, f"scalar_{name}")(put(a), value, out)
    scalar_ref = KERNELS[f"scalar_{name}"].reference
    want = reference(scalar_ref, a, np.dtype(dtype).type(value), dtype=dtype)
    np.testing.assert_allclose(get(out), want, equal_nan=True, **tol(dtype))


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("n", SIZES)
def test_ewise_unary(core, simd, dtype, name, n):
    a, _ = operands(n, dtype)
    out = core.alloc(n, dtype)
    getattr(core, f"ewise_{name}")(put(a), out)
    np.testing.assert_allclose(
        get(out), reference(UNARY[name], a, dtype=dtype), equal_nan=True, **tol(dtype)
    )


def test_in_place(core, dtype):
    a, b = operands(1001, dtype)
    h = put(a)
    core.ewise_add(h, put(b), h)
    np.testing.assert_allclose(get(h), a + b, equal_nan=True, **tol(dtype))


def test_inputs_longer_than_out(core, dtype):
    a, b = operands(50, dtype)
    out = core.alloc(20, dtype)
    core.ewise_mul(put(a), put(b), out)
    np.testing.assert_allclose(get(out), (a * b)[:20], equal_nan=True, **tol(dtype))


@pytest.mark.parametrize("n", [0, 1, 33, 300_001])
def test_ewise_where(core, dtype, n):
    rng = np.random.default_rng(3)
    cond = (rng.random(n) > 0.5).astype(dtype)
    cond[: min(n, 3)] = [np.nan, -0.0, 2.0][: min(n, 3)]
    a, b = rand(n, dtype, rng), rand(n, dtype, rng)
    out = core.alloc(n, dtype)
    core.ewise_where(put(cond), put(a), put(b), out)
    np.testing.assert_array_equal(get(out), KERNELS["ewise_where"].reference(cond, a, b))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 5000),
    name=st.sampled_from(sorted(BINARY)),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_binary_sweep(n, name, dtype):
    from needle_cpp import _core

    a, b = operands(n, dtype)
    out = _core.alloc(n, dtype)
    getattr(_core, f"ewise_{name}")(put(a), put(b), out)
    np.testing.assert_allclose(
        get(out), reference(BINARY[name], a, b, dtype=dtype), equal_nan=True, **tol(dtype)
    )


@pytest.mark.parametrize("threads", [1, 2])
def test_large_outputs_use_streaming_stores(core, simd, threads):
    # > 8 MiB per thread takes the non-temporal store path; odd length leaves a tail.
    n = (1 << 21) + 7
    before = core.get_num_threads()
    core.set_num_threads(threads)
    try:
        a, b = operands(n, "float64")
        out = core.alloc(n, "float64")
        core.ewise_sub(put(a), put(b), out)
        np.testing.assert_array_equal(get(out), a - b)
        core.scalar_mul(put(a), 3.0, out)
        np.testing.assert_array_equal(get(out), a * 3.0)
        core.ewise_neg(put(a), out)
        np.testing.assert_array_equal(get(out), -a)
    finally:
        core.set_num_threads(before)
