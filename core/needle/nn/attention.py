"""Attention and the Transformer (the course's hw4 extension), batch-first inside."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import init, ops
from ..autograd import Tensor
from ..ops.fused_seq import attention_parts
from .basic import Dropout, Embedding, Linear, ReLU
from .module import Module, Sequential
from .norm import LayerNorm1d


def causal_mask(t_q: int, t_k: int, like: Tensor) -> Tensor:
    """A constant ``(1, 1, t_q, t_k)`` tensor: 0 where key j <= query i, else a large negative."""
    offset = t_k - t_q
    mask = np.triu(np.ones((t_q, t_k), dtype=np.float32), k=1 + offset) * -1e9
    return Tensor(
        mask.reshape(1, 1, t_q, t_k), device=like.device, dtype=like.dtype, requires_grad=False
    )


class MultiHeadAttention(Module):
    """``softmax(Q K^T / sqrt(d) + mask) V`` over inputs ``(B, H, T, d)``.

    Args:
        dropout: dropout on the attention probabilities (training only).
        causal: mask out keys later than the query.

    ``forward(q, k, v)`` returns ``(result (B, H, T_q, d), probs (B, H, T_q, T_k))``.
    """

    def __init__(
        self,
        *,
        dropout: float = 0.0,
        causal: bool = False,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.causal = causal
        self.dropout = Dropout(dropout)

    def extra_repr(self) -> str:
        return f"causal={self.causal}"

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """One fused op (:func:`needle.ops.attention`): the scaled, masked softmax in one
        kernel, the dropout mask (drawn as :class:`Dropout` draws it) applied inside."""
        *lead, t_q, d = q.shape
        mask = None
        drop = self.dropout
        if drop.training:  # the mask is drawn even for p == 0, as Dropout does
            keep = init.randb(*lead, t_q, k.shape[-2], p=1.0 - drop.p, device=q.device,
                              dtype=q.dtype)  # fmt: skip
            if drop.p > 0.0:
                mask = keep / (1.0 - drop.p)
        # two separate tensors (not a tuple): the usual caller keeps only the result, and
        # then no (zero) gradient runs through the probabilities
        return attention_parts(q, k, v, causal=self.causal, scale=1.0 / math.sqrt(d), mask=mask)


class AttentionLayer(Module):
    """Pre-norm multi-head attention with input and output projections on ``(B, T, D)``."""

    def __init__(
        self,
        q_features: int,
        num_head: int,
        dim_head: int,
        *,
        k_features: int | None = None,
        v_features: int | None = None,
        out_features: int | None = None,
        dropout: float = 0.0,
        causal: bool = True,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        k_features = k_features or q_features
        v_features = v_features or q_features
        out_features = out_features or q_features
        self.num_head, self.dim_head = num_head, dim_head
        kw = {"device": device, "dtype": dtype}
        self.prenorm_q = LayerNorm1d(q_features, **kw)
        self.prenorm_k = LayerNorm1d(k_features, **kw)
        self.prenorm_v = LayerNorm1d(v_features, **kw)
        inner = num_head * dim_head
        self.q_projection = Linear(q_features, inner, bias=False, **kw)
        self.k_projection = Linear(k_features, inner, bias=False, **kw)
        self.v_projection = Linear(v_features, inner, bias=False, **kw)
        self.attn = MultiHeadAttention(dropout=dropout, causal=causal, **kw)
        self.out_projection = Linear(inner, out_features, bias=False, **kw)

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        return x.reshape((b, t, self.num_head, self.dim_head)).permute((0, 2, 1, 3))

    def forward(self, q: Tensor, k: Tensor | None = None, v: Tensor | None = None) -> Tensor:
        k = q if k is None else k
        v = q if v is None else v
        b, t_q, _ = q.shape
        qh = self._heads(self.q_projection(self.prenorm_q(q)))
        kh = self._heads(self.k_projection(self.prenorm_k(k)))
        vh = self._heads(self.v_projection(self.prenorm_v(v)))
        result, _ = self.attn(qh, kh, vh)
        merged = result.permute((0, 2, 1, 3)).reshape((b, t_q, self.num_head * self.dim_head))
        return self.out_projection(merged)


class TransformerLayer(Module):
    """Attention then a two-layer ReLU MLP, each pre-normed and residual, on ``(B, T, D)``."""

    def __init__(
        self,
        q_features: int,
        num_head: int,
        dim_head: int,
        hidden_size: int,
        *,
        dropout: float = 0.0,
        causal: bool = True,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.attention = AttentionLayer(
            q_features, num_head, dim_head, dropout=dropout, causal=causal, **kw
        )
        self.dropout = Dropout(dropout)
        self.mlp = Sequential(
            LayerNorm1d(q_features, **kw),
            Linear(q_features, hidden_size, **kw),
            ReLU(),
            Dropout(dropout),
            Linear(hidden_size, q_features, **kw),
            Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dropout(self.attention(x))
        return x + self.mlp(x)


class Transformer(Module):
    """A stack of causal :class:`TransformerLayer` with a learned positional embedding.

    ``forward(x, h=None)`` takes ``(T, B, D)`` (or ``(B, T, D)`` with ``batch_first``)
    and returns ``(output, zeros_like(output))``, the RNN-style signature the course's
    language model expects.
    """

    def __init__(
        self,
        embedding_size: int,
        hidden_size: int,
        num_layers: int,
        *,
        num_head: int = 8,
        dim_head: int = 32,
        dropout: float = 0.0,
        causal: bool = True,
        device: Any = None,
        dtype: str = "float32",
        batch_first: bool = False,
        sequence_len: int = 2048,
    ) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.batch_first = batch_first
        self.sequence_len = sequence_len
        self.positional_embedding = Embedding(sequence_len, embedding_size, **kw)
        self.layers = Sequential(
            *[
                TransformerLayer(
                    embedding_size,
                    num_head,
                    dim_head,
                    hidden_size,
                    dropout=dropout,
                    causal=causal,
                    **kw,
                )
                for _ in range(num_layers)
            ]
        )

    def forward(self, x: Tensor, h: Any = None) -> tuple[Tensor, Tensor]:
        if not self.batch_first:
            x = ops.transpose(x, (0, 1))
        b, t, _ = x.shape
        if t > self.sequence_len:
            raise ValueError(
                f"Transformer: sequence length {t} exceeds sequence_len={self.sequence_len}"
            )
        positions = np.broadcast_to(np.arange(t).reshape(t, 1), (t, b))
        pos = self.positional_embedding(Tensor(positions, device=x.device, requires_grad=False))
        x = self.layers(x + ops.transpose(pos, (0, 1)))
        if not self.batch_first:
            x = ops.transpose(x, (0, 1))
        return x, init.zeros_like(x)
