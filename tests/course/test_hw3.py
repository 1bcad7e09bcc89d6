"""hw3: the strided NDArray (views, compact, setitem, element-wise ops, reductions, matmul).

The homework checks that reshape, permute, broadcast_to and slicing are views (strides
and offset arithmetic, no copy), that ``compact`` makes them contiguous, and that every
computation agrees with NumPy. Strides here count elements, as in the course.
"""

from __future__ import annotations

import needle.backend_ndarray as nd
import numpy as np
import pytest


def elem_strides(a: np.ndarray) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


def np_offset(view: np.ndarray, base: np.ndarray) -> int:
    return (
        view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    ) // base.itemsize


def test_compact_strides_of_a_new_array() -> None:
    A = nd.array(np.zeros((4, 5, 6), dtype=np.float32))
    assert A.shape == (4, 5, 6) and A.strides == (30, 6, 1) and A.is_compact()


@pytest.mark.parametrize(
    "shape, axes", [((4, 5, 6), (0, 1, 2)), ((4, 5, 6), (1, 0, 2)), ((4, 5, 6), (2, 1, 0))]
)
def test_permute_is_a_view(shape: tuple[int, ...], axes: tuple[int, ...]) -> None:
    np.random.seed(0)
    a = np.random.randn(*shape).astype(np.float32)
    A = nd.array(a)
    B = A.permute(axes)
    ref = a.transpose(axes)
    assert B.shape == ref.shape and B.strides == elem_strides(ref)
    assert B._handle is A._handle
    np.testing.assert_array_equal(B.numpy(), ref)
    C = B.compact()
    assert C.is_compact() and C.strides == elem_strides(np.ascontiguousarray(ref))
    np.testing.assert_array_equal(C.numpy(), ref)


def test_broadcast_to_has_zero_strides() -> None:
    a = np.arange(4, dtype=np.float32).reshape(1, 4, 1)
    B = nd.array(a).broadcast_to((3, 4, 5))
    assert B.strides == (0, 1, 0) and not B.is_compact()
    np.testing.assert_array_equal(B.numpy(), np.broadcast_to(a, (3, 4, 5)))


def test_reshape_of_compact_array_is_a_view() -> None:
    a = np.arange(24, dtype=np.float32)
    A = nd.array(a)
    B = A.reshape((2, 3, 4))
    assert B.strides == (12, 4, 1) and B._handle is A._handle
    np.testing.assert_array_equal(B.numpy(), a.reshape(2, 3, 4))


@pytest.mark.parametrize(
    "index",
    [
        (slice(1, 3), slice(2, 5, 2), slice(None)),
        (slice(None, None, 2), 1, slice(1, 6, 3)),
        (3, slice(None), slice(4, 5)),
    ],
)
def test_getitem_is_a_strided_view(index: tuple) -> None:  # type: ignore[type-arg]
    np.random.seed(1)
    a = np.random.randn(4, 5, 6).astype(np.float32)
    A = nd.array(a)
    B = A[index]
    # slices as in the course; an integer index drops its axis as in NumPy (the course
    # keeps it with length 1: docs/course.md, write i:i+1 to keep it)
    ref = a[index]
    assert B.shape == ref.shape
    assert B.strides == elem_strides(ref)
    assert B._offset == np_offset(ref, a)
    np.testing.assert_array_equal(B.numpy(), ref)


def test_setitem_through_views() -> None:
    np.random.seed(2)
    a = np.random.randn(6, 6).astype(np.float32)
    b = np.random.randn(6, 6).astype(np.float32)
    A, Bm = nd.array(a), nd.array(b)
    A[1:4, 2:6:2] = Bm[0:3, 0:2]
    a[1:4, 2:6:2] = b[0:3, 0:2]
    np.testing.assert_array_equal(A.numpy(), a)
    A[4:6, :] = 7.5
    a[4:6, :] = 7.5
    np.testing.assert_array_equal(A.numpy(), a)
    P = A.permute((1, 0))
    P[0:2, 0:1] = -1.0
    a.T[0:2, 0:1] = -1.0
    np.testing.assert_array_equal(A.numpy(), a)


@pytest.mark.parametrize(
    "fn, ref",
    [
        (lambda A, B: A + B, lambda a, b: a + b),
        (lambda A, B: A - B, lambda a, b: a - b),
        (lambda A, B: A * B, lambda a, b: a * b),
        (lambda A, B: A / B, lambda a, b: a / b),
        (lambda A, B: A.maximum(B), np.maximum),
        (lambda A, B: A == B, lambda a, b: (a == b).astype(np.float32)),
        (lambda A, B: A >= B, lambda a, b: (a >= b).astype(np.float32)),
        (lambda A, B: A + 1.5, lambda a, b: a + 1.5),
        (lambda A, B: A * 2.0, lambda a, b: a * 2.0),
        (lambda A, B: A**2.0, lambda a, b: a**2.0),
        (lambda A, B: A.maximum(0.1), lambda a, b: np.maximum(a, 0.1)),
        (lambda A, B: (A * A + 1.0).log(), lambda a, b: np.log(a * a + 1.0)),
        (lambda A, B: A.exp(), lambda a, b: np.exp(a)),
        (lambda A, B: A.tanh(), lambda a, b: np.tanh(a)),
    ],
)
def test_elementwise_on_non_compact_views(fn, ref) -> None:  # type: ignore[no-untyped-def]
    np.random.seed(3)
    a = np.random.randn(5, 4).astype(np.float32)
    b = np.random.randn(4, 5).astype(np.float32)
    b[0, 0] = a[0, 0]
    A, B = nd.array(a), nd.array(b).permute((1, 0))
    np.testing.assert_allclose(fn(A, B).numpy(), ref(a, b.T), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("axis", [None, 0, 1, 2])
def test_reductions(axis: int | None) -> None:
    np.random.seed(4)
    a = np.random.randn(3, 4, 5).astype(np.float32)
    A = nd.array(a)
    for keep in (False, True):
        np.testing.assert_allclose(
            A.sum(axis=axis, keepdims=keep).numpy(),
            a.sum(axis=axis, keepdims=keep),
            rtol=1e-5,
            atol=1e-5,
        )
        np.testing.assert_array_equal(
            A.max(axis=axis, keepdims=keep).numpy(), a.max(axis=axis, keepdims=keep)
        )


@pytest.mark.parametrize(
    "m, n, p", [(8, 8, 8), (16, 16, 16), (1, 2, 3), (3, 4, 5), (72, 73, 71), (74, 73, 72)]
)
def test_matmul_sizes_of_the_homework(m: int, n: int, p: int) -> None:
    np.random.seed(5)
    a = np.random.randn(m, n).astype(np.float32)
    b = np.random.randn(n, p).astype(np.float32)
    out = (nd.array(a) @ nd.array(b)).numpy()
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)


def test_flip_and_pad() -> None:
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    A = nd.array(a)
    np.testing.assert_array_equal(A.flip((0, 2)).numpy(), np.flip(a, (0, 2)))
    padded = A.pad(((0, 0), (1, 1), (2, 0)))
    np.testing.assert_array_equal(padded.numpy(), np.pad(a, ((0, 0), (1, 1), (2, 0))))


def test_course_helpers_of_the_ndarray_module() -> None:
    np.random.seed(6)
    a = np.random.randn(3, 4).astype(np.float32)
    A = nd.array(a)
    dev = A.device
    np.testing.assert_allclose(
        A.ewise_or_scalar(A, dev.ewise_mul, dev.scalar_mul).numpy(), a * a, rtol=1e-6
    )
    np.testing.assert_allclose(
        A.ewise_or_scalar(2.0, dev.ewise_mul, dev.scalar_mul).numpy(), a * 2, rtol=1e-6
    )
    view, out = A.reduce_view_out(0)
    assert view.shape == (4, 3) and out.shape == (4,)
    np.testing.assert_array_equal(view.numpy(), a.T)
    view, out = A.reduce_view_out(1, keepdims=True)
    assert view.shape == (3, 4) and out.shape == (3, 1)
    np.testing.assert_allclose(nd.sum(A, axis=1).numpy(), a.sum(1), rtol=1e-5)
    assert dev.Array(7).size == 7
