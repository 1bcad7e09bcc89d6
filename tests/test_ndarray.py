"""NDArray on the default CPU backend: views without copies, compact, setitem, math."""

from __future__ import annotations

import needle.backend_ndarray as nd
import numpy as np
import pytest


@pytest.fixture(params=["numpy", "cpp"])
def device(request):
    dev = nd.device(request.param) if request.param in _installed() else None
    if dev is None:
        pytest.skip(f"backend {request.param!r} is not installed")
    return dev


def _installed() -> set[str]:
    return {d.name for d in nd.all_devices()}


def test_views_share_the_buffer(device) -> None:
    a = nd.array(np.arange(24.0).reshape(2, 3, 4), device=device)
    for view in (
        a.permute((2, 0, 1)),
        a.broadcast_to((5, 2, 3, 4)),
        a[1, ::2, 1:],
        a.reshape((6, 4)),
    ):
        assert view._handle is a._handle
    np.testing.assert_array_equal(
        a.permute((2, 0, 1)).numpy(), np.arange(24.0).reshape(2, 3, 4).transpose(2, 0, 1)
    )
    assert a.permute((2, 0, 1)).strides == (1, 12, 4)
    assert a.broadcast_to((5, 2, 3, 4)).strides == (0, 12, 4, 1)


def test_getitem_steps_and_negative_indices(device) -> None:
    x = np.arange(60.0).reshape(3, 4, 5)
    a = nd.array(x, device=device)
    for idx in [
        (1,),
        (-1, 2),
        (slice(None, None, 2), slice(1, -1), -2),
        (slice(4, 0, 1),),
        (Ellipsis, 3),
    ]:
        np.testing.assert_array_equal(a[idx].numpy(), x[idx])


def test_compact_copies_only_when_needed(device) -> None:
    a = nd.array(np.arange(12.0).reshape(3, 4), device=device)
    assert a.compact() is a
    t = a.permute((1, 0))
    c = t.compact()
    assert c is not t and c.is_compact()
    np.testing.assert_array_equal(c.numpy(), np.arange(12.0).reshape(3, 4).T)
    sliced = a[1:, 1:3]
    np.testing.assert_array_equal(sliced.compact().numpy(), np.arange(12.0).reshape(3, 4)[1:, 1:3])


def test_setitem_array_scalar_and_broadcast(device) -> None:
    x = np.zeros((4, 5))
    a = nd.array(x, device=device)
    a[1:3, ::2] = nd.array(np.ones((2, 3)) * 7, device=device)
    x[1:3, ::2] = 7
    a[3] = 2.5
    x[3] = 2.5
    a[0, 1:4] = nd.array(np.array([1.0, 2.0, 3.0]), device=device)
    x[0, 1:4] = [1, 2, 3]
    a[:, 4] = nd.array(np.array([9.0]), device=device)  # broadcast (1,) -> (4,)
    x[:, 4] = 9
    np.testing.assert_array_equal(a.numpy(), x)


@pytest.mark.parametrize("axis", [None, 0, 1, (0, 2), -1])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(device, axis, keepdims, rng) -> None:
    x = rng.standard_normal((3, 4, 5))
    a = nd.array(x, device=device, dtype="float64")
    np.testing.assert_allclose(
        a.sum(axis, keepdims).numpy(), x.sum(axis=axis, keepdims=keepdims), rtol=1e-12
    )
    np.testing.assert_allclose(a.max(axis, keepdims).numpy(), x.max(axis=axis, keepdims=keepdims))


def test_math_and_comparisons(device, rng) -> None:
    x, y = rng.random((3, 4)) + 0.5, rng.random((3, 4)) + 0.5
    a, b = nd.array(x, device=device, dtype="float64"), nd.array(y, device=device, dtype="float64")
    np.testing.assert_allclose((a + b).numpy(), x + y)
    np.testing.assert_allclose((a - 1.5).numpy(), x - 1.5)
    np.testing.assert_allclose((2.0 / a).numpy(), 2.0 / x)
    np.testing.assert_allclose((a**b).numpy(), x**y)
    np.testing.assert_allclose((a >= b).numpy(), (x >= y).astype(float))
    np.testing.assert_allclose((a == a).numpy(), np.ones((3, 4)))
    for name in ("log", "exp", "tanh", "sqrt", "sin", "cos", "abs"):
        np.testing.assert_allclose(getattr(a, name)().numpy(), getattr(np, name)(x), rtol=1e-12)


@pytest.mark.parametrize(
    ("sa", "sb"),
    [((5, 7), (7, 3)), ((2, 5, 7), (7, 3)), ((2, 1, 4, 3), (5, 3, 2)), ((1, 1), (1, 1))],
)
def test_matmul(device, sa, sb, rng) -> None:
    x, y = rng.standard_normal(sa), rng.standard_normal(sb)
    a, b = nd.array(x, device=device, dtype="float64"), nd.array(y, device=device, dtype="float64")
    np.testing.assert_allclose((a @ b).numpy(), x @ y, rtol=1e-10)
    np.testing.assert_allclose(
        (
            a.permute(tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2))
            .compact()
            .permute(tuple(range(a.ndim - 2)) + (a.ndim - 1, a.ndim - 2))
            @ b
        ).numpy(),
        x @ y,
        rtol=1e-10,
    )


def test_flip_pad_astype_to(device, rng) -> None:
    x = rng.standard_normal((2, 3, 4))
    a = nd.array(x, device=device, dtype="float64")
    np.testing.assert_array_equal(a.flip((0, 2)).numpy(), np.flip(x, (0, 2)))
    np.testing.assert_array_equal(a.flip().numpy(), np.flip(x))
    np.testing.assert_array_equal(
        a.pad(((0, 0), (1, 2), (2, 0))).numpy(), np.pad(x, ((0, 0), (1, 2), (2, 0)))
    )
    f = a.astype("float32")
    assert f.dtype == "float32"
    np.testing.assert_allclose(f.numpy(), x.astype(np.float32))
    moved = a.to("numpy")
    assert moved.device == nd.cpu_numpy()
    np.testing.assert_array_equal(moved.numpy(), x)


def test_argmax_first_maximum(device) -> None:
    x = np.array([[1.0, 3.0, 3.0], [5.0, 0.0, 5.0]])
    a = nd.array(x, device=device)
    np.testing.assert_array_equal(a.argmax(axis=1).numpy(), [1, 0])
    np.testing.assert_array_equal(a.argmax().numpy(), 3)


def test_as_strided_bounds_checked(device) -> None:
    a = nd.array(np.arange(6.0), device=device)
    np.testing.assert_array_equal(a.as_strided((2, 2), (2, 1)).numpy(), [[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="reaches element 7"):
        a.as_strided((3, 4), (2, 1))


def test_course_api_names() -> None:
    assert nd.cpu().name in ("cpp", "numpy") and nd.cpu_numpy().name == "numpy"
    arr = nd.array([1.0, 2.0], device=nd.cpu())
    assert arr.is_compact() and arr._handle is not None and arr.strides == (1,)
    np.testing.assert_array_equal(nd.full((2,), 3.0).numpy(), [3.0, 3.0])
