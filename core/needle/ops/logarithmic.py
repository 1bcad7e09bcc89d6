"""Log-domain reductions: logsumexp, logsoftmax, softmax (all numerically stable).

Each uses the backend's fused kernel (``logsumexp_last``, ``softmax_last``) when the
reduction runs over the last axis and the device declares it, and a max-shifted
composition of required kernels otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray, full, normalize_axes, prod
from ._helpers import check_tensor


def _kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _rows_kernel(kernel: str, a: NDArray, out_shape: tuple[int, ...]) -> NDArray:
    """Run a fused ``*_last`` kernel over the compact rows of ``a``'s last axis."""
    out = NDArray.make(out_shape, device=a.device, dtype=a.dtype)
    # _compact_handle: a buffer whose first a.size elements are a, row-major.
    getattr(a.device, kernel)(a._compact_handle(), out._handle, a.shape[-1])
    return out


def _logsumexp_nd(a: NDArray, axes: tuple[int, ...]) -> NDArray:
    """log(sum(exp(a))) over ``axes``, keeping them as size-1 dims."""
    kept = _kept_shape(a.shape, axes)
    if prod([a.shape[i] for i in axes]) == 0:
        return full(kept, -np.inf, dtype=a.dtype, device=a.device)
    if axes == (a.ndim - 1,) and a.device.has_kernel("logsumexp_last"):
        return _rows_kernel("logsumexp_last", a, kept)
    # Shift by the max, clamped to finite values so that all -inf (or +inf) rows give
    # -inf (or +inf) instead of inf - inf = NaN.
    big = float(np.finfo(a.dtype).max)
    m = a.max(axes, keepdims=True)
    shift = -((-m.maximum(-big)).maximum(-big))  # clamp(m, -big, big)
    shifted = a - shift.broadcast_to(a.shape)
    return shifted.exp().sum(axes, keepdims=True).log() + shift


class LogSumExp(TensorOp):
    """log(sum(exp(a), axes)); the gradient is softmax(a) over ``axes`` times out_grad."""

    def __init__(self, axes: tuple[int, ...], keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a: NDArray) -> NDArray:
        out = _logsumexp_nd(a, self.axes)
        if self.keepdims:
            return out
        return out.reshape(tuple(n for i, n in enumerate(a.shape) if i not in self.axes))

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        from .shape import broadcast_to, reshape
        from .unary import exp

        a = node.inputs[0]
        kept = _kept_shape(a.shape, self.axes)
        lse = broadcast_to(reshape(node, kept), a.shape)
        return broadcast_to(reshape(out_grad, kept), a.shape) * exp(a - lse)


class LogSoftmax(TensorOp):
    """a - logsumexp(a) over the last axis; d = g - softmax(a) * sum(g)."""

    def compute(self, a: NDArray) -> NDArray:
        lse = _logsumexp_nd(a, (a.ndim - 1,))
        return a - lse.broadcast_to(a.shape)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        from .reduction import summation
        from .shape import broadcast_to
        from .unary import exp

        total = summation(out_grad, (node.ndim - 1,), keepdims=True)
        return out_grad - exp(node) * broadcast_to(total, node.shape)


class Softmax(TensorOp):
    """exp(a) / sum(exp(a)) over the last axis; d = s * (g - sum(g * s))."""

    def compute(self, a: NDArray) -> NDArray:
        if a.size == 0:
            return NDArray.make(a.shape, device=a.device, dtype=a.dtype)
        if a.device.has_kernel("softmax_last"):
            return _rows_kernel("softmax_last", a, a.shape)
        last = (a.ndim - 1,)
        e = (a - a.max(last, keepdims=True).broadcast_to(a.shape)).exp()
        return e / e.sum(last, keepdims=True).broadcast_to(a.shape)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        from .reduction import summation
        from .shape import broadcast_to

        dot = summation(out_grad * node, (node.ndim - 1,), keepdims=True)
        return node * (out_grad - broadcast_to(dot, node.shape))


def logsumexp(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(a))) over ``axes`` (an int, a tuple, or ``None`` for all), max-shifted.

    A reduction over zero elements gives -inf, as in SciPy.
    """
    check_tensor("logsumexp", a)
    return LogSumExp(normalize_axes(axes, a.ndim, "logsumexp"), keepdims)(a)


def _check_last_axis(op: str, a: Tensor) -> Tensor:
    check_tensor(op, a)
    if a.ndim == 0:
        raise ValueError(f"{op}: needs at least 1 dim (reduces the last axis), got shape ()")
    return a


def logsoftmax(a: Tensor) -> Tensor:
    """log(softmax(a)) over the last axis (the course's LogSoftmax on 2-D input)."""
    return LogSoftmax()(_check_last_axis("logsoftmax", a))


def softmax(a: Tensor) -> Tensor:
    """exp(a) / sum(exp(a)) over the last axis, max-shifted."""
    return Softmax()(_check_last_axis("softmax", a))
