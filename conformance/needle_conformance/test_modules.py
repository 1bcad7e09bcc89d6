"""Area ``modules``: a few ``needle.nn`` modules and SGD steps on a tiny MLP, vs NumPy.

Skipped until ``needle.nn`` exists (the nn issue fills it in).
"""

from __future__ import annotations

import importlib
from typing import Any

import needle
import numpy as np
import pytest

from . import _state
from .assertions import assert_close

pytestmark = pytest.mark.modules


def _nn() -> Any:
    try:
        importlib.import_module("needle.nn")
        importlib.import_module("needle.optim")
    except ImportError:
        pass
    if not hasattr(needle, "nn") or not hasattr(needle, "optim"):
        pytest.skip("enabled once needle.nn lands")
    return needle.nn


def _dtype() -> str:
    return "float64" if _state.has_float64() else _state.dtypes()[0]


def _tol(dtype: str) -> dict[str, float]:
    return {"rtol": 1e-9, "atol": 1e-10} if dtype == "float64" else {"rtol": 1e-4, "atol": 1e-5}


def _set(param: Any, value: np.ndarray, dev: Any, dtype: str) -> None:
    param.data = needle.Tensor(value, device=dev, dtype=dtype)


def _linear(nn: Any, dev: Any, dtype: str, w: np.ndarray, b: np.ndarray) -> Any:
    lin = nn.Linear(w.shape[0], w.shape[1], device=dev, dtype=dtype)
    _set(lin.weight, w, dev, dtype)
    _set(lin.bias, b.reshape(1, -1), dev, dtype)
    return lin


def _lse(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return (np.log(np.exp(z - m).sum(axis=1, keepdims=True)) + m)[:, 0]


def test_linear_relu_softmax_loss(needle_device: Any) -> None:
    nn, dtype = _nn(), _dtype()
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    y = np.array([0, 2, 1, 2, 0])
    xt = needle.Tensor(x, device=needle_device, dtype=dtype)
    z = _linear(nn, needle_device, dtype, w, b)(xt)
    repro = f"see needle_conformance/test_modules.py (seed 3, device {needle_device}, {dtype})"
    assert_close(
        z.numpy(), x @ w + b, what=f"nn.Linear(4, 3) on (5, 4), {dtype}", repro=repro, **_tol(dtype)
    )
    assert_close(
        nn.ReLU()(z).numpy(),
        np.maximum(x @ w + b, 0),
        repro=repro,
        what=f"nn.ReLU on (5, 3), {dtype}",
        **_tol(dtype),
    )
    loss = nn.SoftmaxLoss()(z, needle.Tensor(y, device=needle_device, dtype=dtype))
    zz = x @ w + b
    expected = np.mean(_lse(zz) - zz[np.arange(5), y])
    assert_close(
        loss.numpy(),
        expected,
        what=f"nn.SoftmaxLoss on (5, 3), {dtype}",
        repro=repro,
        **_tol(dtype),
    )


def test_mlp_sgd_steps(needle_device: Any) -> None:
    """Three SGD steps of Linear-ReLU-Linear + SoftmaxLoss match NumPy's backprop."""
    nn, dtype = _nn(), _dtype()
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((6, 4)), np.array([0, 1, 2, 1, 0, 2])
    w1, b1 = rng.standard_normal((4, 8)) * 0.5, rng.standard_normal(8) * 0.1
    w2, b2 = rng.standard_normal((8, 3)) * 0.5, rng.standard_normal(3) * 0.1
    l1, l2 = _linear(nn, needle_device, dtype, w1, b1), _linear(nn, needle_device, dtype, w2, b2)
    model = nn.Sequential(l1, nn.ReLU(), l2)
    opt = needle.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.SoftmaxLoss()
    xt = needle.Tensor(x, device=needle_device, dtype=dtype)
    yt = needle.Tensor(y, device=needle_device, dtype=dtype)
    onehot = np.eye(3)[y]
    repro = f"see needle_conformance/test_modules.py (seed 5, device {needle_device}, {dtype})"
    for step in range(3):
        opt.reset_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()
        h = x @ w1 + b1
        a = np.maximum(h, 0)
        z = a @ w2 + b2
        e = np.exp(z - z.max(axis=1, keepdims=True))
        dz = (e / e.sum(axis=1, keepdims=True) - onehot) / len(x)
        dh = (dz @ w2.T) * (h > 0)
        expected_loss = np.mean(_lse(z) - z[np.arange(len(y)), y])
        w2, b2 = w2 - 0.1 * (a.T @ dz), b2 - 0.1 * dz.sum(axis=0)
        w1, b1 = w1 - 0.1 * (x.T @ dh), b1 - 0.1 * dh.sum(axis=0)
        what = f"MLP 4-8-3 + SGD(lr=0.1), step {step + 1}, {dtype}"
        assert_close(loss.numpy(), expected_loss, what=f"{what}: loss", repro=repro, **_tol(dtype))
        for name, p, want in (
            ("W1", l1.weight, w1),
            ("b1", l1.bias, b1.reshape(1, -1)),
            ("W2", l2.weight, w2),
            ("b2", l2.bias, b2.reshape(1, -1)),
        ):
            assert_close(
                p.numpy(), want, what=f"{what}: {name} after the update", repro=repro, **_tol(dtype)
            )
