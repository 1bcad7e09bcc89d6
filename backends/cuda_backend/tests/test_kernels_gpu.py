"""(4) Every kernel on a real GPU against NumPy and the NumPy reference backend.

Skipped with "needs a usable CUDA device" where CuPy or a GPU is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
from needle.backends.contract import KERNELS, REQUIRED_KERNELS, kernels_in_family

pytestmark = pytest.mark.gpu

DTYPES = ["float32", "float64"]
TOL = {"float32": dict(rtol=2e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-13)}
# op name -> the contract's NumPy reference (KernelSpec.reference), e.g. "add" -> np.add
NP_BINARY = {s.name.removeprefix("ewise_"): s.reference for s in kernels_in_family("ewise_binary")}
NP_UNARY = {s.name.removeprefix("ewise_"): s.reference for s in kernels_in_family("ewise_unary")}
BINARY_OPS, UNARY_OPS = tuple(NP_BINARY), tuple(NP_UNARY)


def put(k, x, dtype=None):
    x = np.ascontiguousarray(x, dtype=dtype or x.dtype).reshape(-1)
    h = k.alloc(x.size, x.dtype.name)
    k.from_numpy(x, h)
    return h


def get(k, h, shape=None):
    shape = (h.size,) if shape is None else tuple(shape)
    strides = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
    return k.to_numpy(h, shape, strides, 0)


def close(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected, equal_nan=True, **TOL[dtype])


def special(dtype, n=1000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(dtype) * 3
    x[:8] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0]
    return x


def test_table_has_every_required_kernel(cuda_kernels):
    assert all(callable(getattr(cuda_kernels, name)) for name in REQUIRED_KERNELS)


_ERROR_CASES = [(s, c) for s in KERNELS.values() for c in s.errors]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "spec,case", _ERROR_CASES, ids=[f"{s.name}_{c.tag}" for s, c in _ERROR_CASES]
)
def test_contract_error_cases(cuda_kernels, dtype, spec, case):
    """The bad inputs the contract lists for each kernel (KernelSpec.errors)."""
    k = cuda_kernels
    if not callable(getattr(k, spec.name, None)):
        pytest.skip(f"optional kernel {spec.name} is not in the CUDA table")
    other = "float64" if dtype == "float32" else "float32"
    with pytest.raises(case.exceptions, match=spec.name):
        getattr(k, spec.name)(*case.make_args(k, dtype, other))


def test_load_is_cached_per_index(cuda_kernels):
    from needle_cuda.plugin import needle_backend_load, needle_backend_status

    assert needle_backend_load(0) is cuda_kernels
    n = needle_backend_status().device_count
    with pytest.raises(IndexError):
        needle_backend_load(n)
    if n > 1:
        k1 = needle_backend_load(1)
        assert k1 is not cuda_kernels
        a = put(k1, np.arange(5.0))
        assert a.device == 1
        with pytest.raises(ValueError, match="cuda:1"):
            cuda_kernels.fill(a, 1.0)
        out = k1.alloc(5, "float64")
        k1.ewise_add(a, a, out)
        close(get(k1, out), 2 * np.arange(5.0), "float64")


# --- buffers -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_alloc_roundtrip(cuda_kernels, dtype):
    k = cuda_kernels
    x = special(dtype)
    h = put(k, x)
    assert (h.size, h.dtype) == (x.size, dtype)
    got = get(k, h)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, x)
    z = k.alloc(0, dtype)
    assert z.size == 0
    k.from_numpy(np.empty(0, dtype), z)
    assert get(k, z).shape == (0,)
    with pytest.raises(TypeError, match="alloc"):
        k.alloc(3, "int32")
    with pytest.raises(ValueError, match="alloc"):
        k.alloc(-1, dtype)
    with pytest.raises(ValueError, match="from_numpy"):
        k.from_numpy(np.zeros(3, dtype), h)


@pytest.mark.parametrize("dtype", DTYPES)
def test_to_numpy_views(cuda_kernels, ref_kernels, dtype):
    k, r = cuda_kernels, ref_kernels
    x = np.arange(60, dtype=dtype)
    h, hr = put(k, x), put(r, x)
    views = [
        ((3, 4, 5), (20, 5, 1), 0),
        ((5, 4, 3), (1, 5, 20), 0),
        ((2, 3), (10, 2), 7),
        ((), (), 59),
        ((4, 0, 2), (1, 1, 1), 0),
        ((3, 4), (0, 1), 5),
        ((1,), (1,), 59),
    ]
    for view in views:
        got = k.to_numpy(h, *view)
        np.testing.assert_array_equal(got, r.to_numpy(hr, *view))
        assert got.shape == view[0] and got.dtype == np.dtype(dtype)
    with pytest.raises(IndexError, match="to_numpy"):
        k.to_numpy(h, (3, 4, 5), (20, 5, 1), 1)
    with pytest.raises(ValueError, match="to_numpy"):
        k.to_numpy(h, (3,), (-1,), 10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fill_and_astype(cuda_kernels, dtype):
    k = cuda_kernels
    h = k.alloc(1000, dtype)
    k.fill(h, 2.5)
    np.testing.assert_array_equal(get(k, h), np.full(1000, 2.5, dtype))
    k.fill(h, float("nan"))
    assert np.isnan(get(k, h)).all()
    k.fill(k.alloc(0, dtype), 1.0)
    x = special(dtype)
    for other in DTYPES:
        src = put(k, x)
        out = k.alloc(x.size - 3, other)
        k.astype(src, out)
        np.testing.assert_array_equal(get(k, out), x[: x.size - 3].astype(other))
    with pytest.raises(ValueError, match="astype"):
        k.astype(k.alloc(2, dtype), k.alloc(3, dtype))


# --- layout ------------------------------------------------------------------------------
VIEWS = [
    ((4, 5), (5, 1), 0),
    ((5, 4), (1, 5), 0),  # transpose
    ((2, 3, 4), (1, 2, 6), 0),  # permuted
    ((3, 4), (0, 1), 2),  # broadcast
    ((3, 2, 2), (8, 3, 1), 1),  # slice with offset
    ((2,) * 9, tuple(2 ** (8 - i) for i in range(9)), 0),  # 9 dims that merge
    ((2, 1, 3, 1), (9, 4, 2, 7), 3),
    ((0, 3), (3, 1), 0),
    ((), (), 5),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", VIEWS, ids=str)
def test_compact_and_setitem(cuda_kernels, ref_kernels, dtype, view):
    k, r = cuda_kernels, ref_kernels
    shape, strides, offset = view
    n = int(np.prod(shape))
    base = np.arange(512, dtype=dtype) * 0.5
    # compact
    out_k, out_r = k.alloc(n, dtype), r.alloc(n, dtype)
    k.compact(put(k, base), out_k, shape, strides, offset)
    r.compact(put(r, base), out_r, shape, strides, offset)
    np.testing.assert_array_equal(get(k, out_k), out_r.array)
    # ewise_setitem (broadcast views write the same cell several times; skip those)
    if 0 not in strides or n == 0:
        src = -np.arange(n, dtype=dtype) - 1
        hk, hr = put(k, base), put(r, base)
        k.ewise_setitem(put(k, src), hk, shape, strides, offset)
        r.ewise_setitem(put(r, src), hr, shape, strides, offset)
        np.testing.assert_array_equal(get(k, hk), hr.array)
    # scalar_setitem
    hk, hr = put(k, base), put(r, base)
    k.scalar_setitem(n, 7.25, hk, shape, strides, offset)
    r.scalar_setitem(n, 7.25, hr, shape, strides, offset)
    np.testing.assert_array_equal(get(k, hk), hr.array)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layout_errors(cuda_kernels, dtype):
    k = cuda_kernels
    a, out = put(k, np.arange(12, dtype=dtype)), k.alloc(12, dtype)
    before = get(k, a)
    with pytest.raises(IndexError, match="compact"):
        k.compact(a, out, (3, 4), (4, 1), 1)
    with pytest.raises(IndexError, match="ewise_setitem"):
        k.ewise_setitem(a, out, (3, 5), (4, 1), 0)
    with pytest.raises(ValueError, match="scalar_setitem"):
        k.scalar_setitem(11, 1.0, out, (3, 4), (4, 1), 0)
    with pytest.raises(ValueError, match="compact"):
        k.compact(a, k.alloc(5, dtype), (3, 4), (4, 1), 0)
    big = k.alloc(4**9, dtype)
    with pytest.raises(ValueError, match="at most 8"):
        k.compact(
            big, k.alloc(512, dtype), (1, 2) * 9, tuple(4 ** (8 - i // 2) for i in range(18)), 0
        )
    with pytest.raises(TypeError, match="compact"):
        k.compact(a, k.alloc(12, "float64" if dtype == "float32" else "float32"), (12,), (1,), 0)
    with pytest.raises(TypeError, match="compact"):
        k.compact(np.zeros(12, dtype), out, (12,), (1,), 0)
    np.testing.assert_array_equal(get(k, a), before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layout_in_place(cuda_kernels, dtype):
    """compact/ewise_setitem with the same buffer as source and destination."""
    k = cuda_kernels
    x = np.arange(16, dtype=dtype)
    hk = put(k, x)
    k.compact(hk, hk, (4, 4), (1, 4), 0)  # transpose in place
    np.testing.assert_array_equal(get(k, hk), x.reshape(4, 4).T.reshape(-1))
    hk = put(k, x)
    k.ewise_setitem(hk, hk, (8,), (2,), 0)
    expected = x.copy()
    expected[0::2] = x[:8]  # as if the source were read before any write
    np.testing.assert_array_equal(get(k, hk), expected)


# --- element-wise ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", BINARY_OPS)
def test_binary(cuda_kernels, ref_kernels, dtype, op):
    k, r = cuda_kernels, ref_kernels
    a, b = special(dtype, seed=1), special(dtype, seed=2)
    b[8:16] = a[8:16]  # some equal pairs for the comparisons
    if op == "power":
        a = np.abs(a)
        a[:4] = [0.0, 2.0, -2.0, -8.0]
        b[:4] = [0.0, 3.0, 3.0, 1.0 / 3.0]
    out = k.alloc(a.size, dtype)
    getattr(k, f"ewise_{op}")(put(k, a), put(k, b), out)
    ref = r.alloc(a.size, dtype)
    getattr(r, f"ewise_{op}")(put(r, a), put(r, b), ref)
    close(get(k, out), ref.array, dtype)
    for value in (0.0, 1.5, -2.0, float("inf"), float("nan")):
        getattr(k, f"scalar_{op}")(put(k, a), value, out)
        getattr(r, f"scalar_{op}")(put(r, a), value, ref)
        close(get(k, out), ref.array, dtype)
    # in place, and only out.size elements
    x = put(k, a)
    getattr(k, f"ewise_{op}")(x, put(k, b), x)
    close(get(k, x), ref_op(op, a, b, dtype), dtype)
    small = k.alloc(10, dtype)
    getattr(k, f"ewise_{op}")(put(k, a), put(k, b), small)
    close(get(k, small), ref_op(op, a[:10], b[:10], dtype), dtype)


def ref_op(op, a, b, dtype):
    with np.errstate(all="ignore"):
        return NP_BINARY[op](a, b).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", UNARY_OPS)
def test_unary(cuda_kernels, dtype, op):
    k = cuda_kernels
    a = special(dtype, seed=3)
    out = k.alloc(a.size, dtype)
    getattr(k, f"ewise_{op}")(put(k, a), out)
    with np.errstate(all="ignore"):
        close(get(k, out), NP_UNARY[op](a), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_errors(cuda_kernels, dtype):
    k = cuda_kernels
    other = "float64" if dtype == "float32" else "float32"
    a = put(k, np.ones(5, dtype))
    with pytest.raises(ValueError, match="ewise_add"):
        k.ewise_add(a, k.alloc(4, dtype), k.alloc(5, dtype))
    with pytest.raises(TypeError, match="ewise_mul"):
        k.ewise_mul(a, k.alloc(5, other), k.alloc(5, dtype))
    with pytest.raises(TypeError, match="scalar_add"):
        k.scalar_add(a, 1.0, k.alloc(5, other))
    with pytest.raises(TypeError, match="ewise_exp"):
        k.ewise_exp(np.ones(5, dtype), k.alloc(5, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_grid_stride(cuda_kernels, dtype):
    k = cuda_kernels
    n = 65535 * 256 + 12345  # more elements than one pass of the capped grid
    a = np.arange(n, dtype=dtype) % 1000
    out = k.alloc(n, dtype)
    k.scalar_add(put(k, a), 1.0, out)
    np.testing.assert_array_equal(get(k, out), a + 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ewise_where(cuda_kernels, ref_kernels, dtype):
    k, r = cuda_kernels, ref_kernels
    c = (np.arange(100) % 3 == 0).astype(dtype)
    c[5] = np.nan  # NaN != 0, so it selects a
    a, b = special(dtype, 100, 4), special(dtype, 100, 5)
    out, ref = k.alloc(100, dtype), r.alloc(100, dtype)
    k.ewise_where(put(k, c), put(k, a), put(k, b), out)
    r.ewise_where(put(r, c), put(r, a), put(r, b), ref)
    np.testing.assert_array_equal(get(k, out), ref.array)


# --- reductions --------------------------------------------------------------------------
ROW_CASES = [(1, 1), (7, 5), (33, 32), (5, 33), (3, 1000), (3, 1025), (2, 5000), (20000, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,rs", ROW_CASES)
def test_row_reductions(cuda_kernels, ref_kernels, dtype, rows, rs):
    k, r = cuda_kernels, ref_kernels
    rng = np.random.default_rng(rows * 7919 + rs)
    x = (rng.standard_normal(rows * rs) * 4).astype(dtype)
    # ties for argmax, -inf rows and NaN rows
    x2 = x.reshape(rows, rs)
    if rs > 3:
        x2[0, 1] = x2[0, 3] = x2[0].max() + 1
    if rows > 2:
        x2[1, :] = -np.inf
        x2[2, rs // 2] = np.nan
    for name in ("reduce_sum", "reduce_max", "reduce_argmax", "logsumexp_last"):
        out, ref = k.alloc(rows, dtype), r.alloc(rows, dtype)
        getattr(k, name)(put(k, x), out, rs)
        with np.errstate(all="ignore"):
            getattr(r, name)(put(r, x), ref, rs)
        tol = dict(TOL[dtype])
        if name == "reduce_sum":
            tol["atol"] = 1e-4 if dtype == "float32" else 1e-10
        np.testing.assert_allclose(get(k, out), ref.array, equal_nan=True, err_msg=name, **tol)
    out, ref = k.alloc(rows * rs, dtype), r.alloc(rows * rs, dtype)
    k.softmax_last(put(k, x), out, rs)
    r.softmax_last(put(r, x), ref, rs)
    close(get(k, out), ref.array, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduce_edge_cases(cuda_kernels, dtype):
    k = cuda_kernels
    out = k.alloc(4, dtype)
    k.reduce_sum(k.alloc(0, dtype), out, 0)
    np.testing.assert_array_equal(get(k, out), np.zeros(4))
    k.logsumexp_last(k.alloc(0, dtype), out, 0)
    np.testing.assert_array_equal(get(k, out), np.full(4, -np.inf))
    k.reduce_sum(k.alloc(0, dtype), k.alloc(0, dtype), 5)
    with pytest.raises(ValueError, match="reduce_max"):
        k.reduce_max(k.alloc(4, dtype), out, 0)
    with pytest.raises(ValueError, match="reduce_sum"):
        k.reduce_sum(k.alloc(7, dtype), out, 2)
    with pytest.raises(ValueError, match="softmax_last"):
        k.softmax_last(k.alloc(8, dtype), k.alloc(8, dtype), 0)


# --- matmul and convolution ------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "m,n,p", [(1, 1, 1), (3, 4, 5), (64, 128, 32), (7, 0, 3), (0, 4, 5), (129, 65, 33)]
)
def test_matmul(cuda_kernels, dtype, m, n, p):
    k = cuda_kernels
    rng = np.random.default_rng(m + n + p)
    a, b = rng.standard_normal((m, n)).astype(dtype), rng.standard_normal((n, p)).astype(dtype)
    out = k.alloc(m * p, dtype)
    k.fill(out, np.nan)
    k.matmul(put(k, a), put(k, b), out, m, n, p)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else TOL[dtype]
    np.testing.assert_allclose(get(k, out, (m, p)), a.astype(np.float64) @ b, **tol)
    for batch in (1, 3):
        a3 = rng.standard_normal((batch, m, n)).astype(dtype)
        b3 = rng.standard_normal((batch, n, p)).astype(dtype)
        out3 = k.alloc(batch * m * p, dtype)
        k.batched_matmul(put(k, a3), put(k, b3), out3, batch, m, n, p)
        np.testing.assert_allclose(get(k, out3, (batch, m, p)), a3.astype(np.float64) @ b3, **tol)
    with pytest.raises(ValueError, match="matmul"):
        k.matmul(k.alloc(max(m * n - 1, 0), dtype), put(k, b), out, m, n + 1, p)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_nhwc(cuda_kernels, dtype, stride):
    k = cuda_kernels
    rng = np.random.default_rng(stride)
    n, h, w_, c_in, ks, c_out = 2, 9, 8, 3, 3, 4
    x = rng.standard_normal((n, h, w_, c_in)).astype(dtype)
    w = rng.standard_normal((ks, ks, c_in, c_out)).astype(dtype)
    ho, wo = (h - ks) // stride + 1, (w_ - ks) // stride + 1
    ref = np.zeros((n, ho, wo, c_out))
    for i in range(ks):
        for j in range(ks):
            patch = x[
                :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ]
            ref += patch.astype(np.float64) @ w[i, j]
    out = k.alloc(n * ho * wo * c_out, dtype)
    k.conv2d_nhwc(put(k, x), put(k, w), out, n, h, w_, c_in, ks, c_out, stride)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else TOL[dtype]
    np.testing.assert_allclose(get(k, out, ref.shape), ref, **tol)


def test_synchronize(cuda_kernels):
    assert cuda_kernels.synchronize() is None
