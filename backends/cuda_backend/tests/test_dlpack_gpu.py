"""DLPack kernels of the CUDA backend (``dlpack_export`` through a CuPy view,
``dlpack_import`` through ``cupy.from_dlpack``) on a real GPU.

Skipped with "needs a usable CUDA device" where CuPy or a GPU is missing;
``test_dlpack_emulated.py`` runs the same tests over the NumPy stand-in for CuPy.
Expected values are NumPy's ``as_strided`` over the uploaded data.
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

DTYPES = ["float32", "float64"]


def cp_of(k):
    """The ``cupy`` module the kernel table uses (the real one, or the fake)."""
    return sys.modules[type(k).__module__].cupy


def put(k, x):
    h = k.alloc(x.size, x.dtype.name)
    k.from_numpy(np.ascontiguousarray(x).reshape(-1), h)
    return h


def flat(k, h):
    return np.asarray(k.to_numpy(h, (h.size,), (1,), 0))


def strided(x, shape, strides, offset):
    item = x.itemsize
    return np.lib.stride_tricks.as_strided(
        x.reshape(-1)[offset:], shape=shape, strides=tuple(s * item for s in strides)
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_export_shares_a_strided_view(cuda_kernels, dtype):
    k, cp = cuda_kernels, cp_of(cuda_kernels)
    x = np.arange(24, dtype=dtype)
    h = put(k, x)
    p = k.dlpack_export(h, (3, 2), (1, 6), 7)  # transposed, at an offset
    assert tuple(int(v) for v in p.__dlpack_device__()) == (2, k.index)
    np.testing.assert_array_equal(cp.asnumpy(p), strided(x, (3, 2), (1, 6), 7))
    k.scalar_setitem(1, 99.0, h, (1,), (1,), 7)  # the backend writes, the consumer reads
    assert float(cp.asnumpy(p)[0, 0]) == 99.0
    p[2, 1] = -5.0  # the consumer writes element 7 + 2 + 6 = 15, the backend reads
    assert float(flat(k, h)[15]) == -5.0
    del h
    gc.collect()  # the view keeps the memory alive
    assert float(cp.asnumpy(p)[2, 1]) == -5.0 and float(cp.asnumpy(p)[0, 0]) == 99.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_import_shares_a_strided_producer(cuda_kernels, dtype):
    k, cp = cuda_kernels, cp_of(cuda_kernels)
    host = np.arange(24, dtype=dtype).reshape(4, 6)
    src = cp.asarray(host)
    view = src.T[::2, 1:]  # (3, 3): stepped and transposed
    want = host.T[::2, 1:]
    h, shape, strides, offset = k.dlpack_import(view, False)
    assert shape == (3, 3)
    np.testing.assert_array_equal(k.to_numpy(h, shape, strides, offset), want)
    view[0, 0] = 77.0  # the producer writes, the backend reads
    assert float(k.to_numpy(h, (1,), (1,), offset)[0]) == 77.0
    k.scalar_setitem(1, -3.0, h, (1,), (1,), offset + 2 * strides[0] + strides[1])
    assert float(cp.asnumpy(src)[2, 4]) == -3.0  # view[2, 1] is src[1 + 1, 2 * 2]
    del view, src
    gc.collect()  # the buffer keeps the producer's memory alive
    got = k.to_numpy(h, shape, strides, offset)
    expect = want.copy()
    expect[0, 0], expect[2, 1] = 77.0, -3.0
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("dtype", DTYPES)
def test_export_import_round_trip_and_copy_true(cuda_kernels, dtype):
    k = cuda_kernels
    x = np.random.default_rng(0).standard_normal(24).astype(dtype)
    h = put(k, x)
    p = k.dlpack_export(h, (2, 3), (12, 2), 1)
    h2, shape, strides, offset = k.dlpack_import(p, None)
    np.testing.assert_array_equal(
        k.to_numpy(h2, shape, strides, offset), strided(x, (2, 3), (12, 2), 1)
    )
    hc, cshape, cstrides, coff = k.dlpack_import(p, True)
    k.fill(h, 0.0)  # the shared import sees it, the copy does not
    assert not k.to_numpy(h2, shape, strides, offset).any()
    np.testing.assert_array_equal(
        k.to_numpy(hc, cshape, cstrides, coff), strided(x, (2, 3), (12, 2), 1)
    )


def test_host_producer_is_copied_or_refused(cuda_kernels):
    k = cuda_kernels
    x = np.arange(6.0).reshape(2, 3)
    with pytest.raises(BufferError, match="cannot be shared"):
        k.dlpack_import(x, False)
    h, shape, strides, offset = k.dlpack_import(x, None)
    x[0, 0] = 50.0  # a copy: not seen
    np.testing.assert_array_equal(
        k.to_numpy(h, shape, strides, offset), np.arange(6.0).reshape(2, 3)
    )


def test_other_dtype_and_negative_strides(cuda_kernels):
    k, cp = cuda_kernels, cp_of(cuda_kernels)
    ints = cp.asarray(np.arange(6, dtype=np.int64))
    with pytest.raises(BufferError, match="int64"):
        k.dlpack_import(ints, False)
    h, shape, strides, offset = k.dlpack_import(ints, None)
    assert h.dtype == "float64"
    np.testing.assert_array_equal(k.to_numpy(h, shape, strides, offset), np.arange(6.0))
    rev = cp.asarray(np.arange(5.0))[::-1]
    try:
        with pytest.raises(BufferError, match="strides"):
            k.dlpack_import(rev, False)
        h, shape, strides, offset = k.dlpack_import(rev, None)
    except BufferError as exc:  # a producer may refuse to export negative strides itself
        pytest.skip(f"this CuPy does not export negative strides: {exc}")
    np.testing.assert_array_equal(k.to_numpy(h, shape, strides, offset), np.arange(5.0)[::-1])


def test_empty_and_bad_input(cuda_kernels):
    k = cuda_kernels
    h = put(k, np.arange(4.0))
    p = k.dlpack_export(h, (0, 3), (3, 1), 0)
    assert p.shape == (0, 3)
    h0, shape, _, _ = k.dlpack_import(p, None)
    assert shape == (0, 3) and h0.size == 0
    with pytest.raises(IndexError, match="dlpack_export"):
        k.dlpack_export(h, (2, 2), (2, 1), 1)  # reaches element 4 of 4
    with pytest.raises(ValueError, match="dlpack_export"):
        k.dlpack_export(h, (2,), (-1,), 3)
    with pytest.raises(TypeError, match="dlpack_export"):
        k.dlpack_export(np.zeros(4), (4,), (1,), 0)
    with pytest.raises(TypeError, match="DLPack producer"):
        k.dlpack_import([1.0, 2.0], None)
    with pytest.raises(TypeError, match="copy"):
        k.dlpack_import(p, "yes")
