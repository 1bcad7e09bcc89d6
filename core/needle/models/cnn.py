"""Convolutional models on NCHW images: a small ConvNet (MNIST) and ResNet9 (hw4, CIFAR-10).

Both take and return the course's NCHW layout but keep their activations NHWC inside
(the layout the convolution computes in), so the transposes happen once at the input
and once before ``Flatten``, not around every convolution and batch norm. Their
parameters and ``state_dict`` keys are those of the NCHW layers they replace.
"""

from __future__ import annotations

from typing import Any

from .. import nn
from ..autograd import Tensor


def ConvBN(
    a: int,
    b: int,
    k: int,
    s: int,
    device: Any = None,
    dtype: str = "float32",
    layout: str = "NCHW",
) -> nn.Module:
    """Conv, BatchNorm2d, ReLU (``layout`` as for :class:`needle.nn.Conv`)."""
    return nn.Sequential(
        nn.Conv(a, b, k, stride=s, device=device, dtype=dtype, layout=layout),
        nn.BatchNorm2d(b, device=device, dtype=dtype, layout=layout),
        nn.ReLU(),
    )


class _NHWCSequential(nn.Sequential):
    """A Sequential of NHWC layers behind an NCHW interface: the input is transposed to
    NHWC once, and back to NCHW before ``Flatten`` (so flattened features keep the NCHW
    order the linear layers were trained with) or at the end."""

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__}: expected (N, C, H, W) input, got {x.shape}")
        x = x.permute((0, 2, 3, 1))
        nhwc = True
        for layer in self.modules_list:
            if nhwc and isinstance(layer, nn.Flatten):
                x, nhwc = x.permute((0, 3, 1, 2)), False
            x = layer(x)
        return x.permute((0, 3, 1, 2)) if nhwc else x


class ConvNet(_NHWCSequential):
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
        conv = {**kw, "layout": "NHWC"}
        side = image_size // 4
        super().__init__(
            ConvBN(channels, width, 3, 1, **conv),
            nn.MaxPool2d(2, layout="NHWC"),
            ConvBN(width, 2 * width, 3, 1, **conv),
            nn.MaxPool2d(2, layout="NHWC"),
            nn.Flatten(),
            nn.Linear(2 * width * side * side, hidden, **kw),
            nn.ReLU(),
            nn.Linear(hidden, num_classes, **kw),
        )


class ResNet9(_NHWCSequential):
    """The course's ResNet9 for ``(N, 3, 32, 32)`` images (hw4)."""

    def __init__(self, num_classes: int = 10, device: Any = None, dtype: str = "float32") -> None:
        kw = {"device": device, "dtype": dtype}
        conv = {**kw, "layout": "NHWC"}
        super().__init__(
            ConvBN(3, 16, 7, 4, **conv),
            ConvBN(16, 32, 3, 2, **conv),
            nn.Residual(nn.Sequential(ConvBN(32, 32, 3, 1, **conv), ConvBN(32, 32, 3, 1, **conv))),
            ConvBN(32, 64, 3, 2, **conv),
            ConvBN(64, 128, 3, 2, **conv),
            nn.Residual(
                nn.Sequential(ConvBN(128, 128, 3, 1, **conv), ConvBN(128, 128, 3, 1, **conv))
            ),
            nn.Flatten(),
            nn.Linear(128, 128, **kw),
            nn.ReLU(),
            nn.Linear(128, num_classes, **kw),
        )
