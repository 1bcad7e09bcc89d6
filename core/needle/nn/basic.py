"""Basic layers: Linear, Flatten, activations, Dropout, Embedding, SoftmaxLoss."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import init, ops
from ..autograd import Tensor
from ..ops.linalg import MatMulBias
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

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(
            init.kaiming_uniform(in_features, out_features, device=device, dtype=dtype)
        )
        self.bias = None
        if bias:
            b = init.kaiming_uniform(out_features, 1, device=device, dtype=dtype)
            self.bias = Parameter(b.reshape((1, out_features)))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear: input shape {x.shape} has last axis {x.shape[-1]}, "
                f"expected in_features={self.in_features}"
            )
        rows = x.size // self.in_features if x.ndim >= 2 else 0
        if self.bias is not None and rows and self._fold_bias(rows):
            # [x, 1] @ [W; b]: the bias inside the product. For a wide output (a language
            # model's decoder) this copies x and W once instead of broadcasting the bias to
            # the whole output and adding it.
            y = MatMulBias()(x.reshape((rows, self.in_features)), self.weight, self.bias)
            return y.reshape((*x.shape[:-1], self.out_features))
        y = x @ self.weight
        if self.bias is not None:
            b = self.bias.reshape((1,) * (y.ndim - 1) + (self.out_features,))
            y = y + b.broadcast_to(y.shape)
        return y

    def _fold_bias(self, rows: int) -> bool:
        """Whether the bias goes inside the product: when the output is much bigger than
        the copies of x and W that needs (elements moved either way, roughly)."""
        n, p = self.in_features, self.out_features
        return rows * p >= 2 * (rows * n + n * p)


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
        if not self.training:
            return x
        # the course draws the mask even for p == 0, so later draws stay in step with it
        keep = init.randb(*x.shape, p=1.0 - self.p, device=x.device, dtype=x.dtype)
        if self.p == 0.0:
            return x
        return x * keep / (1.0 - self.p)


class SoftmaxLoss(Module):
    """Mean cross-entropy of logits ``(N, k)`` against integer labels ``(N,)``.

    One fused op (:func:`needle.ops.softmax_cross_entropy`): log-softmax, the picked
    log-probabilities and, in the backward pass, ``softmax - one_hot`` in one kernel
    each where the backend has them. Labels given as a Tensor stay on the device (no
    host read, so a compiled step can replay it); anything else is copied there.
    """

    def forward(self, logits: Tensor, y: Any) -> Tensor:
        n, k = logits.shape
        if isinstance(y, Tensor):
            labels = ops.reshape(y.detach(), (y.size,))
            if labels.dtype != logits.dtype:
                labels = labels.astype(logits.dtype)
        else:
            flat = np.asarray(y).reshape(-1)
            if flat.size and not np.all(np.mod(flat, 1) == 0):
                raise ValueError("SoftmaxLoss: labels must be whole numbers")
            if flat.size and (flat.min() < 0 or flat.max() >= k):
                raise IndexError(
                    f"SoftmaxLoss: labels must lie in [0, {k}), got {flat.min()}..{flat.max()}"
                )
            labels = Tensor(flat, device=logits.device, dtype=logits.dtype, requires_grad=False)
        if labels.shape[0] != n:
            raise ValueError(f"SoftmaxLoss: {n} rows of logits but {labels.shape[0]} labels")
        return ops.softmax_cross_entropy(logits, labels)


class Embedding(Module):
    """A lookup table: integer ids ``(T, B)`` to vectors ``(T, B, embedding_dim)``.

    Args:
        num_embeddings: vocabulary size.
        embedding_dim: length of each vector (initialised N(0, 1), as in the course).
    """

    def __init__(
        self, num_embeddings: int, embedding_dim: int, device: Any = None, dtype: str = "float32"
    ) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = Parameter(
            init.randn(num_embeddings, embedding_dim, device=device, dtype=dtype)
        )

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"

    def forward(self, x: Tensor) -> Tensor:
        """Rows of ``weight`` for ids ``x`` (a tensor on the weight's device, or anything
        ``Tensor`` accepts): one ``take_rows`` op, read on the device only."""
        return ops.take_rows(self.weight, x)
