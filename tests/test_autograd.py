"""Autograd: graph recording, accumulation, no_grad, higher order, deep graphs."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from needle.autograd import find_topo_sort


def test_readme_example_gradient() -> None:
    x = ndl.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    (x @ x).sum().backward()
    xn = x.numpy()
    expected = np.ones((2, 2)) @ xn.T + xn.T @ np.ones((2, 2))
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_gradients_accumulate_across_backward_calls() -> None:
    x = ndl.Tensor([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0, 3.0]) + 3.0)


def test_requires_grad_propagates_and_no_grad_records_nothing() -> None:
    a = ndl.Tensor([1.0], requires_grad=False)
    b = ndl.Tensor([2.0], requires_grad=True)
    assert not (a * 2.0).requires_grad
    assert (a * b).requires_grad
    with ndl.no_grad():
        c = a * b
    assert not c.requires_grad and c.op is None and c.inputs == ()


def test_backward_on_tensor_without_grad_raises() -> None:
    a = ndl.Tensor([1.0], requires_grad=False)
    with pytest.raises(RuntimeError, match="does not require grad"):
        (a * 2.0).sum().backward()


def test_graph_is_freed_after_backward() -> None:
    x = ndl.Tensor([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    assert y.inputs == () and y.op is None
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()


def test_retain_graph_allows_second_backward() -> None:
    x = ndl.Tensor([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 2 * np.array([1.0, 2.0]))


def test_second_order_gradient() -> None:
    # f(x) = sum(x^3): f' = 3x^2, f'' along ones = 6x
    x = ndl.Tensor([1.0, -2.0, 0.5], dtype="float64")
    (x**3).sum().backward(create_graph=True)
    g = x.grad
    np.testing.assert_allclose(g.numpy(), 3 * np.array([1.0, -2.0, 0.5]) ** 2)
    assert g.requires_grad
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * np.array([1.0, -2.0, 0.5]))


def test_second_order_of_composite_expression() -> None:
    # f(x, y) = sum(exp(x) * y): d/dx = exp(x) y; d/dy (sum d/dx) = exp(x)
    xv, yv = np.array([0.1, 0.7]), np.array([2.0, -1.0])
    x, y = ndl.Tensor(xv, dtype="float64"), ndl.Tensor(yv, dtype="float64")
    (ndl.exp(x) * y).sum().backward(create_graph=True)
    gx = x.grad
    x.grad = y.grad = None
    gx.sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), np.exp(xv))
    np.testing.assert_allclose(x.grad.numpy(), np.exp(xv) * yv)


def test_deep_chain_backpropagates_without_recursion_limit() -> None:
    x = ndl.Tensor([1.0])
    y = x
    for _ in range(100_000):
        y = y + 1.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0])
    np.testing.assert_allclose(y.numpy(), [100_001.0])


def test_find_topo_sort_orders_inputs_before_users() -> None:
    a = ndl.Tensor([1.0])
    b = a * 2.0
    c = a + b
    order = find_topo_sort([c])
    assert order.index(a) < order.index(b) < order.index(c)
    assert len(order) == 3


def test_detach_and_data_do_not_track() -> None:
    x = ndl.Tensor([3.0])
    d = x.detach()
    assert d.op is None and not d.requires_grad
    np.testing.assert_allclose(x.data.numpy(), [3.0])


def test_shared_subexpression_gradient_summed() -> None:
    x = ndl.Tensor([2.0])
    y = x * x
    z = (y + y * 3.0).sum()  # 4 x^2 -> 8x
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [16.0])


def test_default_dtype_is_float32_and_float64_kept() -> None:
    # lists and numbers are float32; a NumPy float array keeps its dtype (issue 13)
    assert ndl.Tensor([0.0, 1.0]).dtype == "float32" and ndl.Tensor(2.0).dtype == "float32"
    assert ndl.Tensor(np.zeros(2)).dtype == "float64"
    assert ndl.Tensor(np.zeros(2, dtype=np.float32)).dtype == "float32"
    assert ndl.Tensor(np.zeros(2), dtype="float32").dtype == "float32"
    t = ndl.Tensor(np.zeros(2), dtype="float64")
    assert (t * 2.0).dtype == "float64"
