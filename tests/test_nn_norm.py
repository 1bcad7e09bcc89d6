"""BatchNorm and LayerNorm against NumPy formulas."""

from __future__ import annotations

import needle as ndl
import numpy as np
from needle import nn


def test_batchnorm1d_train_output_and_running_stats(rng: np.random.Generator) -> None:
    x = rng.standard_normal((8, 3)).astype(np.float32) * 2 + 1
    bn = nn.BatchNorm1d(3, momentum=0.1)
    y = bn(ndl.Tensor(x)).numpy()
    mean, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-5)
    bn.eval()
    expected = (x - 0.1 * mean) / np.sqrt(0.9 + 0.1 * var + 1e-5)
    np.testing.assert_allclose(bn(ndl.Tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_batchnorm1d_gradient_matches_formula(rng: np.random.Generator) -> None:
    x = rng.standard_normal((5, 2)).astype(np.float64)
    w = rng.standard_normal(5 * 2).reshape(5, 2)
    bn = nn.BatchNorm1d(2, dtype="float64")
    xt = ndl.Tensor(x, dtype="float64")
    (bn(xt) * ndl.Tensor(w, dtype="float64")).sum().backward()
    n = 5
    xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
    dx = (n * w - w.sum(0) - xhat * (w * xhat).sum(0)) / (n * np.sqrt(x.var(0) + 1e-5))
    np.testing.assert_allclose(xt.grad.numpy(), dx, rtol=1e-6, atol=1e-8)


def test_batchnorm2d_normalises_per_channel(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    bn = nn.BatchNorm2d(3)
    y = bn(ndl.Tensor(x)).numpy()
    mean = x.mean((0, 2, 3), keepdims=True)
    var = x.var((0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var.ravel(), rtol=1e-5)


def test_layernorm_matches_numpy(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 4, 6)).astype(np.float32)
    ln = nn.LayerNorm1d(6)
    ln.weight.data = ndl.Tensor(np.arange(6, dtype=np.float32))
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * np.arange(6)
    np.testing.assert_allclose(ln(ndl.Tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-5)
