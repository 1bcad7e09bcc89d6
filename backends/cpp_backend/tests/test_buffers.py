"""alloc, from_numpy, to_numpy, fill, astype."""

from __future__ import annotations

import numpy as np
import pytest
from cpp_test_utils import get, put, rand


@pytest.mark.parametrize("size", [0, 1, 7, 1000])
def test_alloc_size_dtype(core, dtype, size):
    h = core.alloc(size, dtype)
    assert h.size == size
    assert h.dtype == dtype
    assert h.ptr % 64 == 0 or size == 0


# (300, 301) and (128, 784): large enough for from_numpy to copy in parallel chunks,
# with a chunk boundary inside a row
@pytest.mark.parametrize("shape", [(0,), (5,), (3, 4), (2, 3, 5), (300, 301), (128, 784)])
def test_round_trip(core, dtype, shape):
    x = rand(shape, dtype)
    h = put(x)
    np.testing.assert_array_equal(get(h, shape), x)


def test_from_numpy_casts_like_numpy(core):
    h = core.alloc(3, "float32")
    core.from_numpy(np.array([1, 2, 3], dtype=np.int64), h)
    np.testing.assert_array_equal(get(h), np.array([1, 2, 3], np.float32))


def test_to_numpy_owns_memory_and_views(core, dtype):
    x = rand((4, 6), dtype)
    h = put(x)
    y = core.to_numpy(h, (3, 2), (6, 2), 1)  # x[:3, 1::2][:, :2]
    np.testing.assert_array_equal(y, x[:3, 1:5:2])
    assert y.flags.owndata and y.dtype == np.dtype(dtype)
    core.fill(h, 0.0)
    assert y.any()  # the copy does not change with the buffer
    s = core.to_numpy(h, (), (), 5)
    assert s.shape == () and s == 0


@pytest.mark.parametrize("size", [0, 1, 33, 100_003])
def test_fill(core, dtype, size):
    h = core.alloc(size, dtype)
    core.fill(h, 2.5)
    np.testing.assert_array_equal(get(h), np.full(size, 2.5, dtype))


@pytest.mark.parametrize(
    "src,dst", [("float32", "float64"), ("float64", "float32"), ("float32", "float32")]
)
def test_astype(core, src, dst):
    x = rand(101, src)
    out = core.alloc(100, dst)
    core.astype(put(x), out)
    np.testing.assert_array_equal(get(out), x[:100].astype(dst))


def test_alloc_too_large_is_memory_error(core):
    with pytest.raises(MemoryError):
        core.alloc(2**62, "float64")
