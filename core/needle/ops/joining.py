"""Joining and splitting: stack, split, concatenate.

As in the course, ``Stack`` and ``Concatenate`` take one :class:`TensorTuple` input and
``Split`` returns one; the functional wrappers accept a list of tensors.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..autograd import Tensor, TensorOp, TensorTuple, TensorTupleOp
from ..backend_ndarray import NDArray, normalize_axis
from ..backend_ndarray import concatenate as nd_concatenate
from ..backend_ndarray import stack as nd_stack
from ._helpers import check_same_device, check_tensor
from .tuples import make_tuple


def _axis(op: str, axis: int, ndim: int) -> int:
    if ndim == 0:  # normalize_axis lets axis 0 of a 0-d array through, as reductions want
        raise ValueError(f"{op}: axis {axis} is out of range for an array of 0 dims")
    return normalize_axis(axis, ndim, op)


class Stack(TensorOp):
    def __init__(self, axis: int) -> None:
        self.axis = axis

    def compute(self, args: tuple[NDArray, ...]) -> NDArray:  # type: ignore[override]
        return nd_stack(args, self.axis)

    def gradient(self, out_grad: Tensor, node: Tensor) -> TensorTuple:
        return split(out_grad, self.axis)


class Split(TensorTupleOp):
    """Slices of ``a`` along ``axis``, with that axis removed (the inverse of stack)."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def compute(self, a: NDArray) -> tuple[NDArray, ...]:  # type: ignore[override]
        lead = (slice(None),) * self.axis
        return tuple(a[(*lead, i)].compact() for i in range(a.shape[self.axis]))

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> Tensor:  # type: ignore[override]
        return stack(list(out_grad), self.axis)


class Concatenate(TensorOp):
    def __init__(self, axis: int) -> None:
        self.axis = axis

    def compute(self, args: tuple[NDArray, ...]) -> NDArray:  # type: ignore[override]
        return nd_concatenate(args, self.axis)

    def gradient(self, out_grad: Tensor, node: Tensor) -> TensorTuple:
        from .indexing import getitem

        parts, at = [], 0
        lead = (slice(None),) * self.axis
        for x in node.inputs[0].realize_cached_data():
            n = x.shape[self.axis]
            parts.append(getitem(out_grad, (*lead, slice(at, at + n))))
            at += n
        return make_tuple(*parts)


def _check_list(op: str, args: Sequence[Tensor]) -> list[Tensor]:
    if isinstance(args, TensorTuple):
        args = list(args)
    if isinstance(args, Tensor) or not isinstance(args, (list, tuple)):
        raise TypeError(f"{op}: expected a list of tensors, got {type(args).__name__}")
    if not args:
        raise ValueError(f"{op}: need at least one tensor")
    for t in args:
        check_tensor(op, t)
    check_same_device(op, *args)
    dtypes = {t.dtype for t in args}
    if len(dtypes) > 1:
        raise TypeError(f"{op}: dtypes differ: {sorted(dtypes)}")
    return list(args)


def stack(args: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new axis ``axis``.

    Raises:
        ValueError: empty list, shapes differ, or axis out of range.
    """
    args = _check_list("stack", args)
    shape = args[0].shape
    for t in args:
        if t.shape != shape:
            raise ValueError(f"stack: shapes differ, {shape} and {t.shape}")
    return Stack(_axis("stack", axis, len(shape) + 1))(make_tuple(*args))


def split(a: Tensor, axis: int = 0) -> TensorTuple:
    """The slices of ``a`` along ``axis``, each without that axis (course semantics)."""
    check_tensor("split", a)
    return Split(_axis("split", axis, a.ndim))(a)


def concatenate(args: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; other dims must match."""
    args = _check_list("concatenate", args)
    first = args[0]
    if first.ndim == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated")
    ax = _axis("concatenate", axis, first.ndim)
    for t in args:
        if (
            t.ndim != first.ndim
            or t.shape[:ax] + t.shape[ax + 1 :] != first.shape[:ax] + first.shape[ax + 1 :]
        ):
            raise ValueError(
                f"concatenate: shapes {first.shape} and {t.shape} differ off axis {ax}"
            )
    return Concatenate(ax)(make_tuple(*args))
