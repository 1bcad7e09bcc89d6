"""Basic layers: Linear, Flatten, activations, Dropout, Embedding, SoftmaxLoss."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import init, ops
from ..autograd import Tensor
from .module import Module, Parameter


class Linear(Module):
    """``y = x @ W + b`` over the last axis of ``x``.

    Args:
        in_features, out_features: sizes of the input's and output's last axis.
        bias: whether to add a learned bias.
        device, dtype: where the parameters live and their dtype.

    Weights are Kaiming-uniform with fan_in ``in_features``; the bias is Kaiming-uniform
    with fan_in ``out_features``, reshaped to ``(1, out_features)``, as in the course.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: str = "float32") -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(init.kaiming_uniform(in_features, out_features, device=device,
                                                     dtype=dtype))
        self.bias = None
        if bias:
            b = init.kaiming_uniform(out_features, 1, device=device, dtype=dtype)
            self.bias = Parameter(b.reshape((1, out_features)))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input shape {x.shape} has last axis {x.shape[-1]}, "
                             f"expected in_features={self.in_features}")
        y = x @ self.weight
        if self.bias is not None:
            b = self.bias.reshape((1,) * (y.ndim - 1) + (self.out_features,))
            y = y + b.broadcast_to(y.shape)
        return y


class Flatten(Module):
    """Reshape ``(N, d1, d2, ...)`` to ``(N, d1 * d2 * ...)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape((x.shape[0], -1))


class ReLU(Module):
    """max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class Tanh(Module):
    """tanh(x)."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x))."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.sigmoid(x)


class Dropout(Module):
    """In training, zero each element with probability ``p`` and scale the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must lie in [0, 1), got {p}")
        self.p = p

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = init.randb(*x.shape, p=1.0 - self.p, device=x.device, dtype=x.dtype)
        return x * keep / (1.0 - self.p)


def one_hot_matrix(labels: Any, n: int, like: Tensor) -> Tensor:
    """A constant ``(len(labels), n)`` one-hot tensor on ``like``'s device and dtype."""
    idx = np.asarray(labels.numpy() if isinstance(labels, Tensor) else labels).reshape(-1)
    return Tensor(like.device.one_hot(n, idx, dtype=like.dtype), requires_grad=False)


class SoftmaxLoss(Module):
    """Mean cross-entropy of logits ``(N, k)`` against integer labels ``(N,)``."""

    def forward(self, logits: Tensor, y: Any) -> Tensor:
        n, k = logits.shape
        y_one_hot = one_hot_matrix(y, k, logits)
        if y_one_hot.shape[0] != n:
            raise ValueError(f"SoftmaxLoss: {n} rows of logits but {y_one_hot.shape[0]} labels")
        correct = ops.summation(logits * y_one_hot, (1,))
        return ops.summation(ops.logsumexp(logits, axes=(1,)) - correct) / float(n)


class Embedding(Module):
    """A lookup table: integer ids ``(T, B)`` to vectors ``(T, B, embedding_dim)``.

    Args:
        num_embeddings: vocabulary size.
        embedding_dim: length of each vector (initialised N(0, 1), as in the course).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, device: Any = None,
                 dtype: str = "float32") -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = Parameter(init.randn(num_embeddings, embedding_dim, device=device,
                                           dtype=dtype))

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        one_hot = one_hot_matrix(x, self.num_embeddings, self.weight)
        return (one_hot @ self.weight).reshape((*shape, self.embedding_dim))
