"""hw0: parse_mnist and the softmax (cross-entropy) loss."""

from __future__ import annotations

import needle as ndl
import numpy as np
from course.helpers import mnist_dir, read_idx_bytes
from needle import data, nn


def test_parse_mnist_values_and_layout() -> None:
    folder = mnist_dir()
    X, y = data.parse_mnist(
        folder / "train-images-idx3-ubyte.gz", folder / "train-labels-idx1-ubyte.gz"
    )
    # the course: X float32 (N, 784) scaled to [0, 1]; y uint8 (N,)
    assert X.dtype == np.float32 and y.dtype == np.uint8
    assert X.shape == (60000, 784) and y.shape == (60000,)
    raw = read_idx_bytes(folder / "train-images-idx3-ubyte.gz", 16).reshape(60000, 784)
    np.testing.assert_array_equal(X, raw.astype(np.float32) / 255.0)
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_array_equal(y, read_idx_bytes(folder / "train-labels-idx1-ubyte.gz", 8))
    np.testing.assert_array_equal(y[:10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4])


def test_softmax_loss_is_mean_cross_entropy() -> None:
    np.random.seed(0)
    Z = np.random.randn(50, 10).astype(np.float32)
    y = np.random.randint(0, 10, 50)
    expected = np.mean(np.log(np.exp(Z).sum(axis=1)) - Z[np.arange(50), y])
    loss = nn.SoftmaxLoss()(ndl.Tensor(Z), ndl.Tensor(y))
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    # hw1's form: logsumexp minus the one-hot selected logit, averaged
    onehot = np.eye(10, dtype=np.float32)[y]
    z, yt = ndl.Tensor(Z), ndl.Tensor(onehot)
    hw1 = (ndl.logsumexp(z, axes=(1,)) - (z * yt).sum(axes=(1,))).sum() / 50
    np.testing.assert_allclose(hw1.numpy(), expected, rtol=1e-5)
