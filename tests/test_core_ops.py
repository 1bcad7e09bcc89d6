"""The core op set: forward against NumPy, gradients against finite differences."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from gradcheck import check_gradients
from needle import ops


def t64(x: np.ndarray) -> ndl.Tensor:
    return ndl.Tensor(x, dtype="float64")


@pytest.mark.parametrize(
    ("fn", "ref"),
    [
        (lambda a, b: a + b, np.add),
        (lambda a, b: a - b, np.subtract),
        (lambda a, b: a * b, np.multiply),
        (lambda a, b: a / b, np.divide),
    ],
    ids=["add", "sub", "mul", "div"],
)
def test_binary_ops_broadcast_forward_and_grad(fn, ref, rng) -> None:
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,)) + 3.0
    np.testing.assert_allclose(fn(t64(a), t64(b)).numpy(), ref(a, b), rtol=1e-12)
    check_gradients(fn, a, b)


def test_scalar_ops(rng) -> None:
    a = rng.random((2, 3)) + 0.5
    for fn, ref in [
        (lambda x: x + 2.0, lambda x: x + 2.0),
        (lambda x: 2.0 - x, lambda x: 2.0 - x),
        (lambda x: x * -1.5, lambda x: x * -1.5),
        (lambda x: x / 4.0, lambda x: x / 4.0),
        (lambda x: 3.0 / x, lambda x: 3.0 / x),
        (lambda x: x**2.5, lambda x: x**2.5),
        (lambda x: 2.0**x, lambda x: 2.0**x),
        (lambda x: -x, lambda x: -x),
    ]:
        np.testing.assert_allclose(fn(t64(a)).numpy(), ref(a), rtol=1e-12)
        check_gradients(fn, a)


def test_tensor_power_tensor(rng) -> None:
    a, b = rng.random((3,)) + 0.5, rng.standard_normal((3,))
    np.testing.assert_allclose((t64(a) ** t64(b)).numpy(), a**b, rtol=1e-12)
    check_gradients(lambda x, y: x**y, a, b)


@pytest.mark.parametrize(
    ("name", "ref", "positive"),
    [("exp", np.exp, False), ("log", np.log, True), ("relu", lambda x: np.maximum(x, 0), False)],
)
def test_unary_core_ops(name, ref, positive, rng) -> None:
    a = rng.standard_normal((4, 3))
    a = np.abs(a) + 0.1 if positive else a + np.sign(a) * 0.05  # keep relu away from 0
    fn = getattr(ops, name)
    np.testing.assert_allclose(fn(t64(a)).numpy(), ref(a), rtol=1e-12)
    check_gradients(fn, a)


@pytest.mark.parametrize(
    ("sa", "sb"), [((3, 4), (4, 5)), ((2, 3, 4), (4, 2)), ((2, 1, 3, 4), (5, 4, 2))]
)
def test_matmul_forward_and_grad(sa, sb, rng) -> None:
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    np.testing.assert_allclose((t64(a) @ t64(b)).numpy(), a @ b, rtol=1e-10)
    check_gradients(ops.matmul, a, b)


@pytest.mark.parametrize("axes", [None, 0, 1, (0, 2), -1])
def test_summation(axes, rng) -> None:
    a = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(ops.summation(t64(a), axes).numpy(), a.sum(axis=axes), rtol=1e-12)
    check_gradients(lambda x: ops.summation(x, axes), a)


def test_summation_keepdims(rng) -> None:
    a = rng.standard_normal((2, 3))
    out = t64(a).sum(1, keepdims=True)
    assert out.shape == (2, 1)
    np.testing.assert_allclose(out.numpy(), a.sum(1, keepdims=True))


def test_shape_ops_forward_and_grad(rng) -> None:
    a = rng.standard_normal((2, 3, 4))
    np.testing.assert_allclose(ops.reshape(t64(a), (6, 4)).numpy(), a.reshape(6, 4))
    np.testing.assert_allclose(ops.reshape(t64(a), (-1, 2)).numpy(), a.reshape(-1, 2))
    np.testing.assert_allclose(ops.transpose(t64(a)).numpy(), a.swapaxes(-1, -2))
    np.testing.assert_allclose(ops.transpose(t64(a), (0, 2)).numpy(), a.swapaxes(0, 2))
    np.testing.assert_allclose(ops.permute(t64(a), (2, 0, 1)).numpy(), a.transpose(2, 0, 1))
    b = rng.standard_normal((3, 1))
    np.testing.assert_allclose(
        ops.broadcast_to(t64(b), (2, 3, 5)).numpy(), np.broadcast_to(b, (2, 3, 5))
    )
    check_gradients(lambda x: ops.reshape(x, (4, 6)), a)
    check_gradients(lambda x: ops.transpose(x, (0, 2)), a)
    check_gradients(lambda x: ops.permute(x, (2, 0, 1)), a)
    check_gradients(lambda x: ops.broadcast_to(x, (2, 3, 5)), b)


def test_ops_on_non_contiguous_inputs(rng) -> None:
    a = rng.standard_normal((4, 5))
    at = ops.transpose(t64(a))  # a strided view under the hood
    np.testing.assert_allclose((at * 2.0 + 1.0).numpy(), a.T * 2 + 1)
    np.testing.assert_allclose((at @ t64(a)).numpy(), a.T @ a, rtol=1e-10)
    np.testing.assert_allclose(at.sum(0).numpy(), a.T.sum(0), rtol=1e-12)


def test_empty_and_zero_d(rng) -> None:
    e = t64(np.zeros((0, 3)))
    assert (e + 1.0).shape == (0, 3)
    np.testing.assert_allclose(e.sum(0).numpy(), np.zeros(3))
    s = t64(np.array(2.5))
    assert s.shape == ()
    np.testing.assert_allclose((s * s).numpy(), 6.25)
    m = t64(np.zeros((2, 0))) @ t64(np.zeros((0, 3)))
    np.testing.assert_allclose(m.numpy(), np.zeros((2, 3)))
