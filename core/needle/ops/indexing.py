"""Indexing and layout: getitem, setitem (out of place), flip, dilate, undilate, pad.

Indices are basic ones: ints (negative counts from the end), slices (any non-zero
step) and one ``...``. A slice with a negative step is taken as the positive-step
slice over the same elements followed by a flip of that axis, since NDArray views
only carry non-negative strides.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray, normalize_axes
from ._helpers import check_same_device, check_tensor, is_scalar, unbroadcast

Index = tuple[Any, ...]


def _normalize_index(
    op: str, idx: Any, shape: tuple[int, ...]
) -> tuple[Index, tuple[int, ...], tuple[int, ...]]:
    """Return (basic index with positive-step slices, axes of the result to flip, result shape).

    Raises ``IndexError``/``TypeError`` naming ``op`` and ``shape``.
    """
    if not isinstance(idx, tuple):
        idx = (idx,)
    if sum(i is Ellipsis for i in idx) > 1:
        raise IndexError(
            f"{op}: an index can only have a single ellipsis, got {idx} for shape {shape}"
        )
    if Ellipsis in idx:
        at = next(k for k, i in enumerate(idx) if i is Ellipsis)
        idx = idx[:at] + (slice(None),) * (len(shape) - len(idx) + 1) + idx[at + 1 :]
    if len(idx) > len(shape):
        raise IndexError(f"{op}: too many indices ({len(idx)}) for shape {shape}")
    idx = idx + (slice(None),) * (len(shape) - len(idx))
    basic: list[Any] = []
    flips: list[int] = []
    out_shape: list[int] = []
    for axis, (i, n) in enumerate(zip(idx, shape)):
        if isinstance(i, numbers.Integral) and not isinstance(i, bool):
            if not -n <= int(i) < n:
                raise IndexError(
                    f"{op}: index {i} is out of bounds for axis {axis} of shape {shape}"
                )
            basic.append(int(i) % n)
        elif isinstance(i, slice):
            if i.step == 0:
                raise ValueError(f"{op}: slice step cannot be zero (axis {axis} of shape {shape})")
            picked = range(*i.indices(n))
            if picked.step < 0:
                if picked:
                    flips.append(len(out_shape))
                    basic.append(slice(picked[-1], picked[0] + 1, -picked.step))
                else:
                    basic.append(slice(0, 0))
            else:
                basic.append(
                    slice(picked.start, picked.stop, picked.step) if picked else slice(0, 0)
                )
            out_shape.append(len(picked))
        else:
            raise TypeError(
                f"{op}: indices must be ints, slices or ..., "
                f"got {type(i).__name__} for shape {shape}"
            )
    return tuple(basic), tuple(flips), tuple(out_shape)


class GetItem(TensorOp):
    """a[idx]; the gradient scatters out_grad into zeros of a's shape."""

    def __init__(self, index: Index, flips: tuple[int, ...]) -> None:
        self.index = index
        self.flips = flips

    def compute(self, a: NDArray) -> NDArray:
        view = a[self.index]
        return view.flip(self.flips) if self.flips else view

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return ScatterZeros(self.index, self.flips, node.inputs[0].shape)(out_grad)


class ScatterZeros(TensorOp):
    """zeros(shape) with ``g`` written at ``index``: the adjoint of :class:`GetItem`."""

    def __init__(self, index: Index, flips: tuple[int, ...], shape: tuple[int, ...]) -> None:
        self.index = index
        self.flips = flips
        self.shape = shape

    def compute(self, g: NDArray) -> NDArray:
        out = NDArray.make(self.shape, device=g.device, dtype=g.dtype)
        out.fill(0.0)
        out[self.index] = g.flip(self.flips) if self.flips else g
        return out

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return GetItem(self.index, self.flips)(out_grad)


class SetItem(TensorOp):
    """A copy of ``a`` with ``value`` (broadcast) written at ``index``."""

    def __init__(self, index: Index, flips: tuple[int, ...], view_shape: tuple[int, ...]) -> None:
        self.index = index
        self.flips = flips
        self.view_shape = view_shape

    def compute(self, a: NDArray, value: NDArray) -> NDArray:
        out = a.copy()
        value = value.broadcast_to(self.view_shape)
        out[self.index] = value.flip(self.flips) if self.flips else value
        return out

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        value = node.inputs[1]
        grad_a = SetItemScalar(self.index, 0.0)(out_grad)
        grad_value = GetItem(self.index, self.flips)(out_grad)
        return grad_a, unbroadcast(grad_value, value.shape)


class SetItemScalar(TensorOp):
    """A copy of ``a`` with the number ``value`` written at ``index``."""

    def __init__(self, index: Index, value: float) -> None:
        self.index = index
        self.value = value

    def compute(self, a: NDArray) -> NDArray:
        out = a.copy()
        out[self.index] = self.value
        return out

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return SetItemScalar(self.index, 0.0)(out_grad)


def getitem(a: Tensor, idx: Any) -> Tensor:
    """``a[idx]`` for basic indices: ints, slices (any step) and ``...``.

    Raises:
        IndexError: an index out of bounds or too many indices.
        TypeError: an index of another kind (tensors, lists, None).
    """
    check_tensor("getitem", a)
    index, flips, _ = _normalize_index("getitem", idx, a.shape)
    return GetItem(index, flips)(a)


def setitem(a: Tensor, idx: Any, value: Tensor | float) -> Tensor:
    """A new tensor equal to ``a`` except ``value`` (broadcast) at ``a[idx]``.

    Out of place: ``a`` is unchanged. Gradients flow to ``a`` (zero at the overwritten
    elements) and to ``value``. Tensors have no ``__setitem__``: in-place writes would
    corrupt the recorded graph, so use this function instead.
    """
    check_tensor("setitem", a)
    index, flips, view_shape = _normalize_index("setitem", idx, a.shape)
    if is_scalar(value):
        return SetItemScalar(index, float(value))(a)
    if not isinstance(value, Tensor):
        raise TypeError(f"setitem: value must be a Tensor or a number, got {type(value).__name__}")
    check_same_device("setitem", a, value)
    if value.dtype != a.dtype:
        raise TypeError(f"setitem: value dtype {value.dtype} differs from {a.dtype}")
    try:
        value.realize_cached_data().broadcast_to(view_shape)
    except ValueError:
        raise ValueError(
            f"setitem: value of shape {value.shape} does not broadcast to the selected "
            f"shape {view_shape} of a tensor of shape {a.shape}"
        ) from None
    return SetItem(index, flips, view_shape)(a, value)


class Flip(TensorOp):
    def __init__(self, axes: tuple[int, ...]) -> None:
        self.axes = axes

    def compute(self, a: NDArray) -> NDArray:
        return a.flip(self.axes)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return flip(out_grad, self.axes)


def flip(a: Tensor, axes: Any = None) -> Tensor:
    """Reverse the order of elements along ``axes`` (an int, a tuple, or ``None``: all)."""
    check_tensor("flip", a)
    return Flip(normalize_axes(axes, a.ndim, "flip"))(a)


class Dilate(TensorOp):
    """Insert ``dilation`` zeros after every element along ``axes``.

    ``shape`` is the output shape; by default ``n * (dilation + 1)`` along each dilated
    axis (the course's layout, trailing zeros included). The gradient of undilate asks
    for the input's exact shape instead.
    """

    def __init__(
        self, axes: tuple[int, ...], dilation: int, shape: tuple[int, ...] | None = None
    ) -> None:
        self.axes = axes
        self.dilation = dilation
        self.shape = shape

    def _index(self, ndim: int) -> Index:
        step = self.dilation + 1
        return tuple(
            slice(None, None, step) if i in self.axes else slice(None) for i in range(ndim)
        )

    def compute(self, a: NDArray) -> NDArray:
        shape = self.shape or tuple(
            n * (self.dilation + 1) if i in self.axes else n for i, n in enumerate(a.shape)
        )
        out = NDArray.make(shape, device=a.device, dtype=a.dtype)
        out.fill(0.0)
        out[self._index(a.ndim)] = a
        return out

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return Undilate(self.axes, self.dilation)(out_grad)


class Undilate(TensorOp):
    """Keep every ``dilation + 1``-th element along ``axes`` (the inverse of dilate)."""

    def __init__(self, axes: tuple[int, ...], dilation: int) -> None:
        self.axes = axes
        self.dilation = dilation

    def compute(self, a: NDArray) -> NDArray:
        return a[Dilate(self.axes, self.dilation)._index(a.ndim)].compact()

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return Dilate(self.axes, self.dilation, node.inputs[0].shape)(out_grad)


def _dilation_args(op: str, a: Tensor, axes: Any, dilation: int) -> tuple[int, ...]:
    check_tensor(op, a)
    if not isinstance(dilation, numbers.Integral) or dilation < 0:
        raise ValueError(f"{op}: dilation must be a non-negative int, got {dilation!r}")
    return normalize_axes(axes, a.ndim, op)


def dilate(a: Tensor, axes: Any, dilation: int) -> Tensor:
    """``dilation`` zeros after each element along ``axes`` (course semantics)."""
    axes = _dilation_args("dilate", a, axes, dilation)
    return Dilate(axes, int(dilation))(a)  # a new node even for 0, as in the course


def undilate(a: Tensor, axes: Any, dilation: int) -> Tensor:
    """Every ``dilation + 1``-th element along ``axes``, starting at 0."""
    axes = _dilation_args("undilate", a, axes, dilation)
    return a if dilation == 0 else Undilate(axes, int(dilation))(a)


class Pad(TensorOp):
    """Zero padding; ``axes[i] = (before, after)``. The gradient crops the padding off."""

    def __init__(self, axes: tuple[tuple[int, int], ...]) -> None:
        self.axes = axes

    def compute(self, a: NDArray) -> NDArray:
        return a.pad(self.axes)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        shape = node.inputs[0].shape
        index = tuple(slice(b, b + n) for n, (b, _) in zip(shape, self.axes))
        return GetItem(index, ())(out_grad)


def pad(a: Tensor, axes: Sequence[tuple[int, int]]) -> Tensor:
    """Zero-pad ``a``: ``axes`` holds one ``(before, after)`` pair per axis."""
    check_tensor("pad", a)
    try:
        pairs = tuple((int(b), int(e)) for b, e in axes)
    except (TypeError, ValueError):
        raise ValueError(
            f"pad: need one (before, after) pair per axis of {a.shape}, got {axes!r}"
        ) from None
    if len(pairs) != a.ndim or any(min(p) < 0 for p in pairs):
        raise ValueError(
            "pad: need one (before, after) pair of non-negative ints per axis of "
            f"{a.shape}, got {axes!r}"
        )
    if all(p == (0, 0) for p in pairs):
        return a
    return Pad(pairs)(a)
