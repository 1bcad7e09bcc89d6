"""Log-domain reductions: logsumexp, logsoftmax, softmax (all numerically stable).

Forward passes are NDArray methods, which run the backend's fused kernel
(``logsumexp_last``, ``softmax_last``) when the reduction runs over the last axis and the
device declares it, and a max-shifted composition of required kernels otherwise.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray, kept_shape, normalize_axes
from ._helpers import check_tensor


class LogSumExp(TensorOp):
    """log(sum(exp(a), axes)); the gradient is softmax(a) over ``axes`` times out_grad."""

    def __init__(self, axes: tuple[int, ...], keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a: NDArray) -> NDArray:
        return a.logsumexp(self.axes, keepdims=self.keepdims)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        from .shape import broadcast_to, reshape
        from .unary import exp

        a = node.inputs[0]
        kept = kept_shape(a.shape, self.axes)
        lse = broadcast_to(reshape(node, kept), a.shape)
        return broadcast_to(reshape(out_grad, kept), a.shape) * exp(a - lse)


class LogSoftmax(TensorOp):
    """a - logsumexp(a) over the last axis; d = g - softmax(a) * sum(g)."""

    def compute(self, a: NDArray) -> NDArray:
        return a.logsoftmax()

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        from .reduction import summation
        from .shape import broadcast_to
        from .unary import exp

        total = summation(out_grad, (node.ndim - 1,), keepdims=True)
        return out_grad - exp(node) * broadcast_to(total, node.shape)


class Softmax(TensorOp):
    """exp(a) / sum(exp(a)) over the last axis; d = s * (g - sum(g * s))."""

    def compute(self, a: NDArray) -> NDArray:
        return a.softmax()

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
