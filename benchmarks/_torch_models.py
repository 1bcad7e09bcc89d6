"""The benchmark models written in PyTorch, layer for layer as in ``needle.models``.

They follow the course's architectures (CMU 10-414/714 hw2 and hw4) so a PyTorch CPU
training step is the same work as a needle one. Imported only where torch is installed.
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(in_features: int, hidden: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, classes))


class _Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


def mlp_resnet(dim: int, hidden: int, blocks: int, classes: int, drop: float) -> nn.Module:
    def block() -> nn.Module:
        inner = nn.Sequential(
            nn.Linear(hidden, hidden // 2),
            nn.BatchNorm1d(hidden // 2),
            nn.ReLU(),
            nn.Dropout(drop),
            nn.Linear(hidden // 2, hidden),
            nn.BatchNorm1d(hidden),
        )
        return nn.Sequential(_Residual(inner), nn.ReLU())

    return nn.Sequential(
        nn.Linear(dim, hidden),
        nn.ReLU(),
        *[block() for _ in range(blocks)],
        nn.Linear(hidden, classes),
    )


def _conv_bn(c_in: int, c_out: int, k: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, padding=k // 2), nn.BatchNorm2d(c_out), nn.ReLU()
    )


def resnet9(classes: int = 10) -> nn.Module:
    """ResNet9 of the course (hw4): 3x32x32 in, ``classes`` logits out."""
    return nn.Sequential(
        _conv_bn(3, 16, 7, 4),
        _conv_bn(16, 32, 3, 2),
        _Residual(nn.Sequential(_conv_bn(32, 32, 3, 1), _conv_bn(32, 32, 3, 1))),
        _conv_bn(32, 64, 3, 2),
        _conv_bn(64, 128, 3, 2),
        _Residual(nn.Sequential(_conv_bn(128, 128, 3, 1), _conv_bn(128, 128, 3, 1))),
        nn.Flatten(),
        nn.Linear(128, 128),
        nn.ReLU(),
        nn.Linear(128, classes),
    )


class LanguageModel(nn.Module):
    """Embedding, an LSTM or a causal pre-norm Transformer, and a linear head.

    Takes ``(T, B)`` token ids and returns ``(T * B, vocab)`` logits, as the course's does.
    """

    def __init__(
        self,
        vocab: int,
        embedding: int,
        hidden: int,
        layers: int,
        seq_model: str,
        seq_len: int,
        heads: int = 4,
    ) -> None:
        super().__init__()
        self.seq_model = seq_model
        self.embedding = nn.Embedding(vocab, embedding)
        if seq_model == "lstm":
            self.model: nn.Module = nn.LSTM(embedding, hidden, layers)
            out_features = hidden
        else:
            self.positions = nn.Embedding(seq_len, embedding)
            layer = nn.TransformerEncoderLayer(
                embedding, heads, hidden, dropout=0.0, norm_first=True
            )
            self.model = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            out_features = embedding
        self.linear = nn.Linear(out_features, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embedding(x)
        if self.seq_model == "lstm":
            h, _ = self.model(h)
        else:
            t = x.shape[0]
            h = h + self.positions(torch.arange(t)).unsqueeze(1)
            mask = nn.Transformer.generate_square_subsequent_mask(t)
            h = self.model(h, mask=mask, is_causal=True)
        return self.linear(h.reshape(-1, h.shape[-1]))
