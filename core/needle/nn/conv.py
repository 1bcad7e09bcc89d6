"""Convolution and pooling over NCHW images (or NHWC ones with ``layout="NHWC"``)."""

from __future__ import annotations

import math
from typing import Any

from .. import init, ops
from ..autograd import Tensor
from .module import Module, Parameter


class Conv(Module):
    """2-D convolution, NCHW in and out, square kernel, "same" padding ``k // 2``.

    Wraps ``ops.conv`` (NHWC input, ``(k, k, in, out)`` weight). Weights are
    Kaiming-uniform with fan_in ``in * k * k``; the bias is
    U(-1/sqrt(in * k * k), 1/sqrt(in * k * k)), as in the course.

    ``layout="NHWC"`` takes and returns ``(N, H, W, C)`` activations: no transposes
    around the convolution (the model zoo keeps activations NHWC between layers). The
    parameters and ``state_dict`` keys are the same in both layouts.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        bias: bool = True,
        device: Any = None,
        dtype: str = "float32",
        layout: str = "NCHW",
    ) -> None:
        super().__init__()
        self.layout = _check_layout("Conv", layout)
        if isinstance(kernel_size, tuple):
            kernel_size = kernel_size[0]
        if isinstance(stride, tuple):
            stride = stride[0]
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = kernel_size, stride
        self.padding = kernel_size // 2
        k = kernel_size
        self.weight = Parameter(
            init.kaiming_uniform(
                in_channels * k * k,
                out_channels * k * k,
                shape=(k, k, in_channels, out_channels),
                device=device,
                dtype=dtype,
            )
        )
        self.bias = None
        if bias:
            bound = 1.0 / math.sqrt(in_channels * k * k)
            self.bias = Parameter(
                init.rand(out_channels, low=-bound, high=bound, device=device, dtype=dtype)
            )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, bias={self.bias is not None}"
            + ("" if self.layout == "NCHW" else f", layout={self.layout!r}")
        )

    def forward(self, x: Tensor) -> Tensor:
        nhwc = self.layout == "NHWC"
        if x.ndim != 4 or x.shape[3 if nhwc else 1] != self.in_channels:
            want = f"(N, H, W, {self.in_channels})" if nhwc else f"(N, {self.in_channels}, H, W)"
            raise ValueError(f"Conv: expected {want} input, got {x.shape}")
        if not nhwc:
            x = x.permute((0, 2, 3, 1))
        out = ops.conv(x, self.weight, stride=self.stride, padding=self.padding)
        if self.bias is not None:
            out = out + self.bias.reshape((1, 1, 1, self.out_channels)).broadcast_to(out.shape)
        return out if nhwc else out.permute((0, 3, 1, 2))


def _check_layout(name: str, layout: str) -> str:
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"{name}: layout must be 'NCHW' or 'NHWC', got {layout!r}")
    return layout


class _Pool2d(Module):
    def __init__(self, kernel_size: int, stride: int | None = None, layout: str = "NCHW") -> None:
        super().__init__()
        self.layout = _check_layout(type(self).__name__, layout)
        stride = kernel_size if stride is None else stride
        if stride != kernel_size:
            raise ValueError(
                f"{type(self).__name__}: only stride == kernel_size is supported, "
                f"got kernel_size={kernel_size}, stride={stride}"
            )
        self.kernel_size = kernel_size

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"

    def _windows(self, x: Tensor) -> Tensor:
        """(N, C, H/k, k, W/k, k), or (N, H/k, k, W/k, k, C) for NHWC: each pooling window
        on the axes :meth:`_axes` names."""
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__}: expected a 4-D input, got {x.shape}")
        if self.layout == "NHWC":
            n, h, w, c = x.shape
        else:
            n, c, h, w = x.shape
        k = self.kernel_size
        if h % k or w % k:
            raise ValueError(
                f"{type(self).__name__}: height and width of {x.shape} must be "
                f"multiples of kernel_size={k}"
            )
        if self.layout == "NHWC":
            return x.reshape((n, h // k, k, w // k, k, c))
        return x.reshape((n, c, h // k, k, w // k, k))

    def _axes(self) -> tuple[int, int]:
        return (2, 4) if self.layout == "NHWC" else (3, 5)


class MaxPool2d(_Pool2d):
    """Maximum over non-overlapping ``k x k`` windows of an NCHW (or NHWC) input."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.max(self._windows(x), self._axes())


class AvgPool2d(_Pool2d):
    """Mean over non-overlapping ``k x k`` windows of an NCHW (or NHWC) input."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.mean(self._windows(x), self._axes())
