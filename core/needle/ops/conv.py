"""2-D convolution in the course's layout: NHWC input, (KH, KW, C_in, C_out) weights.

The array work is in ``backend_ndarray.fused``: ``conv2d_pad`` (forward with the zero
padding done by the kernel), ``conv2d_backward_input`` and ``conv2d_backward_weight``. Each
runs the backend's optional kernel (``conv2d_nhwc_pad``, ``conv2d_nhwc_backward_input``,
``conv2d_nhwc_backward_weight``; square kernels) when the device declares it, and a
composition of NDArray operations otherwise (pad + im2col product; g @ W^T added tap by tap
at the strided input pixels; im2col(x)^T g).

The gradients are ops of their own, so they can be differentiated again: with ``s`` the
stride and ``p`` the padding, ``dX = ConvBackwardInput(g, W)`` and ``dW =
ConvBackwardWeight(X, g)`` are bilinear, and the adjoint of each is a convolution or the
other gradient op:

* ``<ConvBackwardInput(g, W), A> = <g, conv(A, W)>``: d/dg = conv(A, W), d/dW =
  ConvBackwardWeight(A, g);
* ``<ConvBackwardWeight(X, g), B> = <g, conv(X, B)>``: d/dX = ConvBackwardInput(g, B),
  d/dg = conv(X, B).
"""

from __future__ import annotations

import numbers

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray, fused
from ._helpers import check_same_device, check_tensor


class Conv(TensorOp):
    """conv(x, w) with zero padding ``padding`` and stride ``stride`` on H and W."""

    def __init__(self, stride: int = 1, padding: int = 0) -> None:
        self.stride = stride
        self.padding = padding

    def compute(self, x: NDArray, w: NDArray) -> NDArray:
        return fused.conv2d_pad(x, w, self.stride, self.padding)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        x, w = node.inputs
        s, p = self.stride, self.padding
        gx = gw = None  # only what some input needs (an image batch needs no gradient)
        if x.requires_grad:
            gx = ConvBackwardInput(s, p, tuple(x.shape[1:3]))(out_grad, w)
        if w.requires_grad:
            gw = ConvBackwardWeight(s, p, tuple(w.shape[:2]))(x, out_grad)
        return gx, gw  # type: ignore[return-value]


class ConvBackwardInput(TensorOp):
    """dX of conv(X, W, stride, padding) given its output gradient g: (g, W) -> X's shape."""

    def __init__(self, stride: int, padding: int, hw: tuple[int, int]) -> None:
        self.stride = stride
        self.padding = padding
        self.hw = hw

    def compute(self, g: NDArray, w: NDArray) -> NDArray:
        return fused.conv2d_backward_input(g, w, self.hw, self.stride, self.padding)

    def gradient(self, adj: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        g, w = node.inputs
        s, p = self.stride, self.padding
        dg = Conv(s, p)(adj, w) if g.requires_grad else None
        dw = ConvBackwardWeight(s, p, tuple(w.shape[:2]))(adj, g) if w.requires_grad else None
        return dg, dw  # type: ignore[return-value]


class ConvBackwardWeight(TensorOp):
    """dW of conv(X, W, stride, padding) given X and the output gradient g: (X, g) -> W's
    shape (KH, KW, C_in, C_out)."""

    def __init__(self, stride: int, padding: int, khw: tuple[int, int]) -> None:
        self.stride = stride
        self.padding = padding
        self.khw = khw

    def compute(self, x: NDArray, g: NDArray) -> NDArray:
        kh, kw = self.khw
        return fused.conv2d_backward_weight(x, g, kh, kw, self.stride, self.padding)

    def gradient(self, adj: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        x, g = node.inputs
        s, p = self.stride, self.padding
        dx = ConvBackwardInput(s, p, tuple(x.shape[1:3]))(g, adj) if x.requires_grad else None
        dg = Conv(s, p)(x, adj) if g.requires_grad else None
        return dx, dg  # type: ignore[return-value]


def conv(x: Tensor, w: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """2-D convolution (cross-correlation, as in the course) of NHWC ``x`` with ``w``.

    Args:
        x: input of shape (N, H, W, C_in).
        w: weights of shape (KH, KW, C_in, C_out) (the course uses KH == KW).
        stride: step between output positions, >= 1.
        padding: zeros added on each side of H and W, >= 0.

    Returns:
        (N, (H + 2p - KH) // stride + 1, (W + 2p - KW) // stride + 1, C_out).

    Raises:
        ValueError: wrong ranks, channel mismatch, bad stride/padding, or a kernel larger
            than the padded input.
    """
    check_tensor("conv", x)
    check_tensor("conv", w)
    check_same_device("conv", x, w)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(
            "conv: need NHWC input and (K, K, C_in, C_out) weights, "
            f"got shapes {x.shape} and {w.shape}"
        )
    if x.dtype != w.dtype:
        raise TypeError(f"conv: dtypes differ, {x.dtype} and {w.dtype}")
    if x.shape[3] != w.shape[2]:
        raise ValueError(
            f"conv: input has {x.shape[3]} channels but weights expect {w.shape[2]} "
            f"(shapes {x.shape} and {w.shape})"
        )
    for name, v, low in (("stride", stride, 1), ("padding", padding, 0)):
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < low:
            raise ValueError(f"conv: {name} must be an int >= {low}, got {v!r}")
    hp, wp = x.shape[1] + 2 * padding, x.shape[2] + 2 * padding
    if w.shape[0] > hp or w.shape[1] > wp or 0 in w.shape[:2]:
        raise ValueError(
            f"conv: kernel {w.shape[:2]} does not fit the padded input {(hp, wp)} "
            f"(shapes {x.shape} and {w.shape}, padding {padding})"
        )
    return Conv(int(stride), int(padding))(x, w)
