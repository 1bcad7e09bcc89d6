"""Convolutional models on NCHW images: a small ConvNet (MNIST) and ResNet9 (hw4, CIFAR-10)."""

from __future__ import annotations

from typing import Any

from .. import nn


def ConvBN(a: int, b: int, k: int, s: int, device: Any = None, dtype: str = "float32") -> nn.Module:
    """Conv, BatchNorm2d, ReLU."""
    return nn.Sequential(
        nn.Conv(a, b, k, stride=s, device=device, dtype=dtype),
        nn.BatchNorm2d(b, device=device, dtype=dtype),
        nn.ReLU(),
    )


class ConvNet(nn.Sequential):
    """Two conv blocks (3x3, batch norm, ReLU, 2x2 max-pool) and two linear layers.

    For ``(N, channels, 28, 28)`` inputs such as MNIST.
    """

    def __init__(
        self,
        channels: int = 1,
        num_classes: int = 10,
        width: int = 16,
        hidden: int = 128,
        image_size: int = 28,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        kw = {"device": device, "dtype": dtype}
        side = image_size // 4
        super().__init__(
            ConvBN(channels, width, 3, 1, **kw),
            nn.MaxPool2d(2),
            ConvBN(width, 2 * width, 3, 1, **kw),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * side * side, hidden, **kw),
            nn.ReLU(),
            nn.Linear(hidden, num_classes, **kw),
        )


class ResNet9(nn.Sequential):
    """The course's ResNet9 for ``(N, 3, 32, 32)`` images (hw4)."""

    def __init__(self, num_classes: int = 10, device: Any = None, dtype: str = "float32") -> None:
        kw = {"device": device, "dtype": dtype}
        super().__init__(
            ConvBN(3, 16, 7, 4, **kw),
            ConvBN(16, 32, 3, 2, **kw),
            nn.Residual(nn.Sequential(ConvBN(32, 32, 3, 1, **kw), ConvBN(32, 32, 3, 1, **kw))),
            ConvBN(32, 64, 3, 2, **kw),
            ConvBN(64, 128, 3, 2, **kw),
            nn.Residual(nn.Sequential(ConvBN(128, 128, 3, 1, **kw), ConvBN(128, 128, 3, 1, **kw))),
            nn.Flatten(),
            nn.Linear(128, 128, **kw),
            nn.ReLU(),
            nn.Linear(128, num_classes, **kw),
        )
