"""compact, ewise_setitem and scalar_setitem over contiguous, strided, transposed and
broadcast views, against NumPy's own strided views."""

from __future__ import annotations

import numpy as np
import pytest
from cpp_test_utils import get, put, rand
from hypothesis import given, settings
from hypothesis import strategies as st


def np_view(flat: np.ndarray, shape, strides, offset) -> np.ndarray:
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(
        flat[offset:], shape=shape, strides=tuple(s * item for s in strides), writeable=True
    )


def row_major(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


# (buffer size, shape, strides, offset)
VIEWS = {
    "contiguous": (60, (3, 4, 5), (20, 5, 1), 0),
    "offset": (70, (3, 4, 5), (20, 5, 1), 7),
    "slice_step": (100, (4, 5), (20, 3), 2),
    "transpose_2d": (12 * 17, (17, 12), (1, 17), 0),
    "transpose_big": (600 * 513, (513, 600), (1, 513), 0),
    "transpose_offset": (40 * 41 + 5, (41, 40), (1, 41), 5),
    "transpose_batch": (3 * 65 * 70, (3, 70, 65), (65 * 70, 1, 70), 0),
    "broadcast_rows": (7, (5, 7), (0, 1), 0),
    "broadcast_cols": (5, (5, 7), (1, 0), 0),
    "broadcast_scalar": (1, (3, 4, 2), (0, 0, 0), 0),
    "broadcast_big": (1000, (300, 1000), (0, 1), 0),
    "permute_3d": (2 * 3 * 4, (4, 2, 3), (1, 12, 4), 0),
    "size_one_dims": (10, (1, 10, 1), (10, 1, 1), 0),
    "zero_d": (3, (), (), 2),
    "empty": (0, (0, 5), (5, 1), 0),
    "empty_with_huge_stride": (1, (3, 0), (1000, 1), 0),
    "long_strided_row": (400_000 * 3, (400_000,), (3,), 1),
}


@pytest.mark.parametrize("case", VIEWS)
def test_compact(core, simd, dtype, case):
    size, shape, strides, offset = VIEWS[case]
    flat = rand(size, dtype)
    want = np.ascontiguousarray(np_view(flat, shape, strides, offset))
    out = core.alloc(want.size, dtype)
    core.compact(put(flat), out, shape, strides, offset)
    np.testing.assert_array_equal(get(out, shape), want)


@pytest.mark.parametrize("case", [c for c in VIEWS if not c.startswith("broadcast")])
def test_ewise_setitem(core, simd, dtype, case):
    size, shape, strides, offset = VIEWS[case]
    flat = rand(size, dtype)
    src = rand(shape, dtype, np.random.default_rng(1))
    out = put(flat)
    core.ewise_setitem(put(src), out, shape, strides, offset)
    want = flat.copy()
    np_view(want, shape, strides, offset)[...] = src
    np.testing.assert_array_equal(get(out), want)


@pytest.mark.parametrize("case", VIEWS)
def test_scalar_setitem(core, dtype, case):
    size, shape, strides, offset = VIEWS[case]
    flat = rand(size, dtype)
    out = put(flat)
    n = int(np.prod(shape))
    core.scalar_setitem(n, -3.25, out, shape, strides, offset)
    want = flat.copy()
    np_view(want, shape, strides, offset)[...] = -3.25
    np.testing.assert_array_equal(get(out), want)


def test_compact_and_setitem_refuse_mixed_dtypes(core):
    # The contract: a and out share one dtype (TypeError naming the kernel otherwise).
    a, out = put(rand(12, "float64")), core.alloc(12, "float32")
    with pytest.raises(TypeError, match="compact: dtype mismatch"):
        core.compact(a, out, (4, 3), (1, 4), 0)
    with pytest.raises(TypeError, match="ewise_setitem: dtype mismatch"):
        core.ewise_setitem(a, out, (4, 3), (1, 4), 0)


def test_scalar_setitem_on_a_huge_stride0_view_is_one_store(core):
    # 2**40 repeats of one element: each element is written once, not 2**40 times.
    h = put(np.zeros(4))
    core.scalar_setitem(2**40, 2.5, h, (2**20, 2**20), (0, 0), 1)
    np.testing.assert_array_equal(get(h), [0.0, 2.5, 0.0, 0.0])


def test_softmax_last_with_a_huge_reduce_size_does_not_crash(core):
    # reduce_size 2**62 overflowed the row-cost product (SIGFPE); no row fits: a no-op.
    a, out = put(np.ones(8)), put(np.zeros(8))
    core.softmax_last(a, out, 2**62)
    np.testing.assert_array_equal(get(out), np.zeros(8))


def test_compact_into_same_buffer(core, dtype):
    flat = rand(16, dtype)
    h = put(flat)
    core.compact(h, h, (4, 4), (1, 4), 0)  # in-place transpose
    np.testing.assert_array_equal(get(h, (4, 4)), flat.reshape(4, 4).T)


@st.composite
def strided_views(draw):
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
    base = list(row_major(tuple(n + draw(st.integers(0, 2)) for n in shape)))
    strides = [draw(st.sampled_from([s, 0, s * 2])) for s in base]
    perm = draw(st.permutations(range(ndim)))
    shape, strides = tuple(shape[i] for i in perm), tuple(strides[i] for i in perm)
    offset = draw(st.integers(0, 5))
    reach = offset + sum((n - 1) * s for n, s in zip(shape, strides)) if 0 not in shape else 0
    return reach + 1 + draw(st.integers(0, 3)), shape, strides, offset


@settings(max_examples=80, deadline=None)
@given(view=strided_views(), dtype=st.sampled_from(["float32", "float64"]))
def test_compact_sweep(view, dtype):
    from needle_cpp import _core

    size, shape, strides, offset = view
    flat = rand(size, dtype)
    want = np.ascontiguousarray(np_view(flat, shape, strides, offset))
    out = _core.alloc(want.size, dtype)
    _core.compact(put(flat), out, shape, strides, offset)
    np.testing.assert_array_equal(get(out, shape), want)
    reached = np_view(np.arange(size), shape, strides, offset)
    if np.unique(reached).size == reached.size:  # setitem: only views without repeated elements
        src = rand(shape, dtype, np.random.default_rng(2))
        buf = put(flat)
        _core.ewise_setitem(put(src), buf, shape, strides, offset)
        expect = flat.copy()
        np_view(expect, shape, strides, offset)[...] = src
        np.testing.assert_array_equal(get(buf), expect)


def test_to_numpy_of_an_impossible_array_names_the_kernel(core):
    h = put(np.zeros(5))
    with pytest.raises(MemoryError, match=r"^to_numpy: "):
        core.to_numpy(h, (2**40,), (0,), 0)  # 8 TiB of repeats of one element
    with pytest.raises(ValueError, match=r"^to_numpy: "):
        core.to_numpy(h, (0, 2**62), (1, 1), 0)  # NumPy cannot make that shape
