"""matmul, batched_matmul and conv2d_nhwc against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from cpp_test_utils import get, put, rand
from hypothesis import given, settings
from hypothesis import strategies as st
from needle.backends import KERNELS

SHAPES = [
    (1, 1, 1),
    (17, 33, 9),
    (130, 257, 65),
    (5, 0, 7),
    (0, 4, 3),
    (3, 4, 0),
    (1, 300, 200),
    (200, 300, 1),
    (64, 64, 64),
    (300, 700, 530),
    (29, 600, 31),
]


def close(dtype: str, n: int) -> dict:
    eps = 1e-6 if dtype == "float32" else 1e-14
    return {"rtol": 50 * eps, "atol": 50 * eps * np.sqrt(max(n, 1))}


@pytest.mark.parametrize("m,n,p", SHAPES)
def test_matmul(core, simd, dtype, m, n, p):
    rng = np.random.default_rng(m * 7 + n)
    a, b = rand((m, n), dtype, rng), rand((n, p), dtype, rng)
    out = core.alloc(m * p, dtype)
    core.fill(out, np.nan)  # n == 0 must still write zeros
    core.matmul(put(a), put(b), out, m, n, p)
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(get(out, (m, p)), want, **close(dtype, n))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_matmul_thread_counts(core, threads):
    before = core.get_num_threads()
    core.set_num_threads(threads)
    try:
        assert core.get_num_threads() == threads
        a, b = rand((150, 170), "float32"), rand((170, 90), "float32")
        out = core.alloc(150 * 90, "float32")
        core.matmul(put(a), put(b), out, 150, 170, 90)
        np.testing.assert_allclose(get(out, (150, 90)), a @ b, **close("float32", 170))
    finally:
        core.set_num_threads(before)


def test_matmul_out_aliases_input(core, dtype):
    a = rand((20, 20), dtype)
    h = put(a)
    core.matmul(h, h, h, 20, 20, 20)
    np.testing.assert_allclose(get(h, (20, 20)), a @ a, **close(dtype, 20))


@pytest.mark.parametrize(
    "batch,m,n,p",
    [(1, 1, 1, 1), (3, 17, 33, 9), (8, 40, 50, 60), (2, 130, 70, 90), (0, 3, 3, 3), (4, 3, 0, 2)],
)
def test_batched_matmul(core, simd, dtype, batch, m, n, p):
    a, b = rand((batch, m, n), dtype), rand((batch, n, p), dtype, np.random.default_rng(1))
    out = core.alloc(batch * m * p, dtype)
    core.batched_matmul(put(a), put(b), out, batch, m, n, p)
    want = KERNELS["batched_matmul"].reference(a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(get(out, (batch, m, p)), want, **close(dtype, n))


def conv_reference(x, w, stride):
    """The contract's NumPy reference, in float64."""
    return KERNELS["conv2d_nhwc"].reference(x.astype(np.float64), w.astype(np.float64), stride)


@pytest.mark.parametrize(
    "n,h,w,cin,k,cout,stride",
    [
        (1, 1, 1, 1, 1, 1, 1),
        (2, 5, 5, 3, 3, 4, 1),
        (2, 9, 7, 3, 3, 5, 2),
        (1, 8, 8, 16, 1, 8, 1),
        (3, 12, 11, 4, 5, 6, 3),
        (2, 16, 16, 8, 3, 16, 1),
        (1, 4, 4, 0, 2, 3, 1),
    ],
)
def test_conv2d_nhwc(core, dtype, n, h, w, cin, k, cout, stride):
    x, wt = rand((n, h, w, cin), dtype), rand((k, k, cin, cout), dtype, np.random.default_rng(5))
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    out = core.alloc(n * ho * wo * cout, dtype)
    core.conv2d_nhwc(put(x), put(wt), out, n, h, w, cin, k, cout, stride)
    np.testing.assert_allclose(
        get(out, (n, ho, wo, cout)), conv_reference(x, wt, stride), **close(dtype, k * k * cin)
    )


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(0, 70),
    n=st.integers(0, 70),
    p=st.integers(0, 70),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_matmul_sweep(m, n, p, dtype):
    from needle_cpp import _core

    a, b = rand((m, n), dtype), rand((n, p), dtype, np.random.default_rng(9))
    out = _core.alloc(m * p, dtype)
    _core.matmul(put(a), put(b), out, m, n, p)
    np.testing.assert_allclose(get(out, (m, p)), a.astype(np.float64) @ b, **close(dtype, n))
