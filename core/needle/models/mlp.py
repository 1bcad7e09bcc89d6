"""Fully connected models: softmax regression, MLP, and the course's MLPResNet (hw2)."""

from __future__ import annotations

import itertools
from typing import Any

from .. import nn


class SoftmaxRegression(nn.Sequential):
    """A single linear layer: logits = x @ W + b."""

    def __init__(
        self,
        in_features: int = 784,
        num_classes: int = 10,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__(nn.Linear(in_features, num_classes, device=device, dtype=dtype))


class MLP(nn.Sequential):
    """``in -> hidden -> ... -> classes`` with ReLU between the layers.

    Args:
        hidden: the sizes of the hidden layers.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: tuple[int, ...] = (256,),
        num_classes: int = 10,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        sizes = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in itertools.pairwise(sizes):
            layers += [nn.Linear(a, b, device=device, dtype=dtype), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], num_classes, device=device, dtype=dtype))
        super().__init__(*layers)


def ResidualBlock(
    dim: int,
    hidden_dim: int,
    norm: Any = nn.BatchNorm1d,
    drop_prob: float = 0.1,
    device: Any = None,
    dtype: str = "float32",
) -> nn.Module:
    """The course's block: ReLU(x + norm(W2 drop(ReLU(norm(W1 x)))))."""
    kw = {"device": device, "dtype": dtype}
    return nn.Sequential(
        nn.Residual(
            nn.Sequential(
                nn.Linear(dim, hidden_dim, **kw),
                norm(hidden_dim, **kw),
                nn.ReLU(),
                nn.Dropout(drop_prob),
                nn.Linear(hidden_dim, dim, **kw),
                norm(dim, **kw),
            )
        ),
        nn.ReLU(),
    )


def MLPResNet(
    dim: int = 784,
    hidden_dim: int = 100,
    num_blocks: int = 3,
    num_classes: int = 10,
    norm: Any = nn.BatchNorm1d,
    drop_prob: float = 0.1,
    device: Any = None,
    dtype: str = "float32",
) -> nn.Module:
    """The course's MLPResNet: Linear, ReLU, ``num_blocks`` residual blocks, Linear."""
    kw = {"device": device, "dtype": dtype}
    return nn.Sequential(
        nn.Linear(dim, hidden_dim, **kw),
        nn.ReLU(),
        *[
            ResidualBlock(hidden_dim, hidden_dim // 2, norm, drop_prob, **kw)
            for _ in range(num_blocks)
        ],
        nn.Linear(hidden_dim, num_classes, **kw),
    )
