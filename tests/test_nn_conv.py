"""Conv (NCHW) and pooling against direct NumPy loops."""

from __future__ import annotations

import needle as ndl
import numpy as np
from needle import nn


def _conv_nchw(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    n, _, h, wd = xp.shape
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, w.shape[3], oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, :, i, j] = np.einsum("ncij,ijco->no", patch, w)
    return out + b.reshape(1, -1, 1, 1)


def test_conv_matches_loops(rng: np.random.Generator) -> None:
    for stride in (1, 2):
        conv = nn.Conv(3, 4, 3, stride=stride)
        x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
        expected = _conv_nchw(x, conv.weight.numpy(), conv.bias.numpy(), stride)
        np.testing.assert_allclose(conv(ndl.Tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_conv_parameter_shapes_and_bias_bound() -> None:
    conv = nn.Conv(8, 16, 5)
    assert conv.weight.shape == (5, 5, 8, 16) and conv.bias.shape == (16,)
    assert np.abs(conv.bias.numpy()).max() <= 1 / np.sqrt(8 * 25)


def test_pooling(rng: np.random.Generator) -> None:
    x = rng.standard_normal((2, 3, 4, 6)).astype(np.float32)
    windows = x.reshape(2, 3, 2, 2, 3, 2)
    np.testing.assert_allclose(nn.MaxPool2d(2)(ndl.Tensor(x)).numpy(), windows.max((3, 5)))
    np.testing.assert_allclose(
        nn.AvgPool2d(2)(ndl.Tensor(x)).numpy(), windows.mean((3, 5)), rtol=1e-5, atol=1e-6
    )
