"""hw1: the autograd engine and the basic operators, as the homework exercises them."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from gradcheck import check_gradients


def T(a: np.ndarray, **kw: object) -> ndl.Tensor:
    return ndl.Tensor(np.asarray(a, dtype=np.float32), **kw)


@pytest.mark.parametrize(
    "op, ref, shapes",
    [
        (lambda a, b: ndl.divide(a, b), lambda a, b: a / b, [(3, 4), (3, 4)]),
        (lambda a: ndl.divide_scalar(a, 2.5), lambda a: a / 2.5, [(3, 4)]),
        (lambda a: ndl.power_scalar(a, 3), lambda a: a**3, [(3, 4)]),
        (lambda a, b: ndl.matmul(a, b), lambda a, b: a @ b, [(3, 4), (4, 5)]),
        (lambda a, b: ndl.matmul(a, b), lambda a, b: a @ b, [(6, 3, 4), (4, 5)]),
        (lambda a: ndl.summation(a, axes=(1,)), lambda a: a.sum(axis=1), [(3, 4, 2)]),
        (lambda a: ndl.summation(a), lambda a: a.sum(), [(3, 4)]),
        (lambda a: ndl.broadcast_to(a, (3, 4)), lambda a: np.broadcast_to(a, (3, 4)), [(1, 4)]),
        (lambda a: ndl.reshape(a, (2, 6)), lambda a: a.reshape(2, 6), [(3, 4)]),
        (lambda a: ndl.negate(a), lambda a: -a, [(3, 4)]),
        (lambda a: ndl.transpose(a), lambda a: np.swapaxes(a, -1, -2), [(2, 3, 4)]),
        (lambda a: ndl.transpose(a, (0, 1)), lambda a: np.swapaxes(a, 0, 1), [(2, 3, 4)]),
        (lambda a: ndl.exp(a), np.exp, [(3, 4)]),
        (lambda a: ndl.relu(a), lambda a: np.maximum(a, 0), [(3, 4)]),
    ],
)
def test_op_forward_and_gradient(op, ref, shapes) -> None:  # type: ignore[no-untyped-def]
    np.random.seed(1)
    arrays = [np.random.randn(*s) for s in shapes]
    out = op(*[T(a) for a in arrays])
    np.testing.assert_allclose(out.numpy(), ref(*arrays), rtol=1e-5, atol=1e-5)
    check_gradients(op, *arrays)


def test_log_forward_and_gradient() -> None:
    np.random.seed(2)
    a = np.random.rand(3, 4) + 0.5
    np.testing.assert_allclose(ndl.log(T(a)).numpy(), np.log(a), rtol=1e-5)
    check_gradients(ndl.log, a)


def test_find_topo_sort_is_depth_first_post_order() -> None:
    a, b = T(np.ones((2, 2)), requires_grad=True), T(np.ones((2, 2)), requires_grad=True)
    c = a * b
    d = c + a
    e = ndl.exp(d) @ c
    order = ndl.autograd.find_topo_sort([e])

    def post_order(node, seen, out):  # type: ignore[no-untyped-def]
        # the homework's recursive definition: inputs in order, then the node
        for child in node.inputs:
            if id(child) not in seen:
                seen.add(id(child))
                post_order(child, seen, out)
        out.append(node)

    expected: list = []
    post_order(e, {id(e)}, expected)
    assert [id(n) for n in order] == [id(n) for n in expected]


def test_compute_gradient_of_variables_accumulates_every_path() -> None:
    np.random.seed(3)
    x = np.random.randn(3, 2)
    w = np.random.randn(2, 4)
    tx, tw = T(x, requires_grad=True), T(w, requires_grad=True)
    out = ((tx @ tw) * (tx @ tw) + tx @ tw).sum()
    out.backward()
    z = x @ w
    g = 2 * z + 1
    np.testing.assert_allclose(tw.grad.numpy(), x.T @ g, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(tx.grad.numpy(), g @ w.T, rtol=1e-4, atol=1e-5)


def test_tensor_basics_the_homework_uses() -> None:
    a = T([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = (a * 2).detach()
    assert not b.requires_grad and b.op is None
    assert a.data.requires_grad is False
    assert isinstance(a.numpy(), np.ndarray)
    assert a.shape == (2, 2) and a.dtype == "float32"
    np.testing.assert_allclose((a + 1 - a / 2).numpy(), a.numpy() / 2 + 1)
    np.testing.assert_allclose((a @ a).numpy(), a.numpy() @ a.numpy())
    np.testing.assert_allclose((a**2).numpy(), a.numpy() ** 2)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def test_nn_epoch_two_layer_network_matches_numpy() -> None:
    """hw1's nn_epoch: logits = ReLU(X W1) W2, SGD on the softmax loss, minibatches in order."""
    np.random.seed(0)
    n, d, h, k, batch, lr = 60, 8, 12, 5, 20, 0.2
    X = np.random.randn(n, d).astype(np.float32)
    y = np.random.randint(0, k, n)
    W1 = (np.random.randn(d, h) / np.sqrt(h)).astype(np.float32)
    W2 = (np.random.randn(h, k) / np.sqrt(k)).astype(np.float32)

    # NumPy: the gradients written out by hand
    w1, w2 = W1.astype(np.float64), W2.astype(np.float64)
    for i in range(0, n, batch):
        x, yb = X[i : i + batch].astype(np.float64), y[i : i + batch]
        z1 = _relu(x @ w1)
        s = np.exp(z1 @ w2)
        s /= s.sum(axis=1, keepdims=True)
        g2 = (s - np.eye(k)[yb]) / batch
        g1 = (z1 > 0) * (g2 @ w2.T)
        w1, w2 = w1 - lr * x.T @ g1, w2 - lr * z1.T @ g2

    # needle: the homework's Tensor code, autograd for the gradients
    t1, t2 = ndl.Tensor(W1), ndl.Tensor(W2)
    for i in range(0, n, batch):
        x = ndl.Tensor(X[i : i + batch])
        yb = ndl.Tensor(np.eye(k, dtype=np.float32)[y[i : i + batch]])
        logits = ndl.relu(x @ t1) @ t2
        loss = (ndl.logsumexp(logits, axes=(1,)) - (logits * yb).sum(axes=(1,))).sum() / batch
        loss.backward()
        t1 = ndl.Tensor(t1.numpy() - lr * t1.grad.numpy())
        t2 = ndl.Tensor(t2.numpy() - lr * t2.grad.numpy())
    np.testing.assert_allclose(t1.numpy(), w1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(t2.numpy(), w2, rtol=1e-4, atol=1e-5)
