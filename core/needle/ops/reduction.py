"""Reductions: summation, max, mean."""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray, kept_shape, normalize_axes, prod
from ._helpers import check_tensor


class Summation(TensorOp):
    def __init__(self, axes: tuple[int, ...], keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a: NDArray) -> NDArray:
        return a.sum(self.axes, keepdims=self.keepdims)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        from .shape import broadcast_to, reshape

        shape = node.inputs[0].shape
        return broadcast_to(reshape(out_grad, kept_shape(shape, self.axes)), shape)


class Max(TensorOp):
    """Maximum over axes; the gradient goes to the arg-max (split evenly among ties)."""

    def __init__(self, axes: tuple[int, ...], keepdims: bool = False) -> None:
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a: NDArray) -> NDArray:
        return a.max(self.axes, keepdims=self.keepdims)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        from .shape import broadcast_to, reshape

        a = node.inputs[0]
        kept = kept_shape(a.shape, self.axes)
        data = a.realize_cached_data()
        hit = data == node.realize_cached_data().reshape(kept).broadcast_to(a.shape)
        count = hit.sum(self.axes, keepdims=True).broadcast_to(a.shape)
        mask = Tensor.make_const(hit / count)
        return broadcast_to(reshape(out_grad, kept), a.shape) * mask


def _reduce_axes(op: str, a: Tensor, axes: Any) -> tuple[int, ...]:
    out = normalize_axes(axes, a.ndim, op)
    if a.ndim == 0 and out:
        raise ValueError(f"{op}: a 0-d tensor has no axis {axes!r} to reduce; use axes=None")
    return out


def summation(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:
    """Sum over ``axes`` (an int, a tuple, or ``None`` for all)."""
    check_tensor("summation", a)
    return Summation(_reduce_axes("summation", a, axes), keepdims)(a)


def max(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axes`` (an int, a tuple, or ``None`` for all)."""
    check_tensor("max", a)
    axes = _reduce_axes("max", a, axes)
    if prod([a.shape[i] for i in axes]) == 0:
        raise ValueError(f"max: zero-size reduction over axes {axes} of shape {a.shape}")
    return Max(axes, keepdims)(a)


def mean(a: Tensor, axes: Any = None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axes``."""
    check_tensor("mean", a)
    axes = _reduce_axes("mean", a, axes)
    count = prod([a.shape[i] for i in axes])
    if count == 0:
        raise ValueError(f"mean: zero-size reduction over axes {axes} of shape {a.shape}")
    return summation(a, axes, keepdims) / float(count)
