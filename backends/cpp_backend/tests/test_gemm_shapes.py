"""The packed gemm's edge paths against NumPy: slivers shorter than the micro-tile (m below
MR, rows spread over slivers), partial vectors (p below or not a multiple of the vector
width, loaded and stored masked), n = 1, k split into blocks (n above KC: C reloaded and
accumulated), B panels split (p above NC), operands read in place or packed, every
transposed-operand flag, and thread splits along rows or columns. Every element of C is
one chain of multiply-adds over k in order, so results must also be bit-identical between
thread counts and between an operand passed transposed or compact."""

from __future__ import annotations

import numpy as np
import pytest
from cpp_test_utils import get, put, rand

# m x n x p: small m and p around the micro-tile (avx512 f32: 14 x 32, avx2: 6 x 16),
# skinny shapes of the training steps, n across the k-block size (256 f32 / 128 f64).
SHAPES = [
    (2, 40, 500),
    (3, 17, 700),
    (13, 33, 45),
    (15, 64, 31),
    (29, 1, 1500),
    (40, 100, 10),
    (128, 100, 10),
    (100, 128, 10),
    (128, 10, 100),
    (33, 300, 17),
    (32, 128, 512),
    (70, 513, 33),
    (130, 90, 1100),
    (257, 7, 3),
    (45, 1, 45),
    (1000, 5, 40),
    (600, 300, 200),  # A stored transposed: k-block rows span > 64 pages, packed in groups
]


def close(dtype: str, n: int) -> dict:
    eps = 1e-6 if dtype == "float32" else 1e-14
    return {"rtol": 50 * eps, "atol": 50 * eps * np.sqrt(max(n, 1))}


def product(core, a, b, m, n, p, ta, tb, threads=None):
    """matmul_t of a (m x n, or n x m stored when ta) and b (n x p, or p x n when tb)."""
    dtype = a.dtype.name
    out = core.alloc(m * p, dtype)
    core.fill(out, np.nan)
    before = core.get_num_threads()
    if threads:
        core.set_num_threads(threads)
    try:
        if ta or tb:
            core.matmul_t(put(a), put(b), out, m, n, p, int(ta), int(tb))
        else:
            core.matmul(put(a), put(b), out, m, n, p)
    finally:
        core.set_num_threads(before)
    return get(out, (m, p))


@pytest.mark.parametrize("m,n,p", SHAPES)
@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_gemm_edges(core, simd, dtype, m, n, p, ta, tb):
    rng = np.random.default_rng(m * 131 + n * 7 + p)
    a, b = rand((m, n), dtype, rng), rand((n, p), dtype, rng)
    got = product(core, a.T.copy() if ta else a, b.T.copy() if tb else b, m, n, p, ta, tb)
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(got, want, **close(dtype, n))
    if ta or tb:  # the same chains of operations as the compact product
        np.testing.assert_array_equal(got, product(core, a, b, m, n, p, 0, 0))


@pytest.mark.parametrize(
    "m,n,p", [(32, 128, 512), (128, 100, 10), (640, 128, 100), (100, 300, 1100), (3, 50, 2000)]
)
@pytest.mark.parametrize("ta,tb", [(0, 0), (1, 0), (0, 1)])
def test_gemm_threads_bit_identical(core, simd, m, n, p, ta, tb):
    """Rows or columns split over 1, 2 or 3 threads: the same bits."""
    rng = np.random.default_rng(m + n + p)
    a, b = rand((m, n), "float32", rng), rand((n, p), "float32", rng)
    a_in, b_in = a.T.copy() if ta else a, b.T.copy() if tb else b
    one = product(core, a_in, b_in, m, n, p, ta, tb, threads=1)
    np.testing.assert_allclose(one, a.astype(np.float64) @ b, **close("float32", n))
    for threads in (2, 3):
        np.testing.assert_array_equal(
            product(core, a_in, b_in, m, n, p, ta, tb, threads=threads), one
        )


@pytest.mark.parametrize("batch,m,n,p", [(5, 13, 20, 10), (3, 33, 70, 17), (4, 128, 100, 10)])
def test_batched_small_products(core, dtype, batch, m, n, p):
    rng = np.random.default_rng(batch * m)
    a, b = rand((batch, m, n), dtype, rng), rand((batch, n, p), dtype, rng)
    for ta, tb in [(0, 0), (1, 0), (0, 1)]:
        a_in = np.ascontiguousarray(a.transpose(0, 2, 1)) if ta else a
        b_in = np.ascontiguousarray(b.transpose(0, 2, 1)) if tb else b
        out = core.alloc(batch * m * p, dtype)
        core.batched_matmul_t(put(a_in), put(b_in), out, batch, m, n, p, ta, tb)
        want = a.astype(np.float64) @ b.astype(np.float64)
        np.testing.assert_allclose(get(out, (batch, m, p)), want, **close(dtype, n))
