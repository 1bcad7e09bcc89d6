"""Shape ops: reshape, broadcast_to, transpose, permute."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray
from ._helpers import check_tensor, unbroadcast


class Reshape(TensorOp):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def compute(self, a: NDArray) -> NDArray:
        return a.reshape(self.shape)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return reshape(out_grad, node.inputs[0].shape)


class BroadcastTo(TensorOp):
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def compute(self, a: NDArray) -> NDArray:
        return a.broadcast_to(self.shape)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return unbroadcast(out_grad, node.inputs[0].shape)


class Permute(TensorOp):
    def __init__(self, axes: tuple[int, ...]) -> None:
        self.axes = axes

    def compute(self, a: NDArray) -> NDArray:
        return a.permute(self.axes)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return permute(out_grad, tuple(inverse))


def _int_shape(op: str, shape: Any, allow_minus_one: bool) -> tuple[int, ...]:
    """``shape`` as a tuple of ints; a float, a bool or a negative size is an error."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or isinstance(shape, str):
        raise TypeError(f"{op}: shape must be a tuple of ints, got {shape!r}")
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"{op}: shape entries must be ints, got {s!r} in {tuple(shape)}")
        if s < 0 and not (allow_minus_one and s == -1):
            valid = "sizes >= 0 (and one -1)" if allow_minus_one else "sizes >= 0"
            raise ValueError(f"{op}: negative size {s} in {tuple(shape)}; expected {valid}")
    return tuple(int(s) for s in shape)


def reshape(a: Tensor, shape: Sequence[int]) -> Tensor:
    """A tensor with the same data in ``shape`` (one entry may be -1)."""
    check_tensor("reshape", a)
    shape = _int_shape("reshape", shape, allow_minus_one=True)
    if shape == a.shape:
        return a
    return Reshape(shape)(a)


def broadcast_to(a: Tensor, shape: Sequence[int]) -> Tensor:
    """``a`` repeated to ``shape`` by NumPy's broadcasting rules."""
    check_tensor("broadcast_to", a)
    shape = _int_shape("broadcast_to", shape, allow_minus_one=False)
    if shape == a.shape:
        return a
    a.realize_cached_data().broadcast_to(shape)  # raises naming both shapes
    return BroadcastTo(shape)(a)


def _int_axes(op: str, axes: Any) -> None:
    """Every entry of ``axes`` is an int (a bool or a float is not an axis)."""
    if isinstance(axes, str) or not hasattr(axes, "__iter__"):
        raise TypeError(f"{op}: axes must be a tuple of ints, got {axes!r}")
    for x in axes:
        if isinstance(x, bool) or not isinstance(x, numbers.Integral):
            raise TypeError(f"{op}: axis must be an int, got {x!r}")


def permute(a: Tensor, axes: Sequence[int]) -> Tensor:
    """Reorder all axes: output axis i is input axis ``axes[i]``."""
    check_tensor("permute", a)
    _int_axes("permute", axes)
    nd_axes = tuple(int(x) % max(a.ndim, 1) if -a.ndim <= int(x) < a.ndim else int(x) for x in axes)
    if sorted(nd_axes) != list(range(a.ndim)):
        raise ValueError(
            f"permute: {tuple(axes)} is not a permutation of the axes of shape {a.shape}"
        )
    return Permute(nd_axes)(a)


def transpose(a: Tensor, axes: tuple[int, int] | None = None) -> Tensor:
    """Swap two axes (the last two by default), as in the course's needle."""
    check_tensor("transpose", a)
    if a.ndim < 2 and axes is None:
        raise ValueError(f"transpose: need at least 2 dims, got shape {a.shape}")
    if axes is not None:
        _int_axes("transpose", axes)
        if len(axes) != 2:
            raise ValueError(f"transpose: axes must be two axes, got {tuple(axes)}")
    i, j = (-2, -1) if axes is None else tuple(axes)
    for ax in (i, j):
        if not -a.ndim <= ax < a.ndim:
            raise ValueError(f"transpose: axis {ax} is out of range for shape {a.shape}")
    order = list(range(a.ndim))
    order[i], order[j] = order[j], order[i]
    return Permute(tuple(order))(a)
