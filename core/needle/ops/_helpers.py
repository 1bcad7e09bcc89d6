"""Small helpers shared by the op families."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import broadcast_shapes
from .tuples import astype


def unbroadcast(grad: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``grad`` down to ``shape``: the adjoint of broadcasting ``shape`` to grad.shape."""
    if grad.shape == shape:
        return grad
    from .reduction import summation
    from .shape import reshape

    lead = len(grad.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1
    )
    out = summation(grad, axes) if axes else grad
    return reshape(out, shape)


def check_same_device(op: str, *tensors: Tensor) -> None:
    """Raise ``ValueError`` naming both devices when tensors live on different ones."""
    first = tensors[0].device
    for t in tensors[1:]:
        if t.device != first:
            raise ValueError(f"{op}: tensors are on different devices, {first} and {t.device}")


def check_tensor(op: str, x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a needle.Tensor, got {type(x).__name__}")
    return x


def is_scalar(x: Any) -> bool:
    """A number, a NumPy scalar, or a one-element NumPy array (the course's scalars)."""
    if isinstance(x, numbers.Number):
        return not isinstance(x, bool)
    return isinstance(x, np.ndarray) and x.size == 1 and x.dtype.kind in "fiu"


def scalar_value(x: Any, op: str = "scalar op") -> float:
    """``x`` (see :func:`is_scalar`) as a Python float; ``TypeError`` for anything else."""
    if isinstance(x, np.ndarray):
        if x.size != 1:
            raise TypeError(f"{op}: expected a scalar, got an array of shape {x.shape}")
        return float(x.reshape(-1)[0])
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: expected a number, got {type(x).__name__}") from None


def promote(op: str, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """float32 with float64 as float64 (as NumPy and PyTorch); ``TypeError`` otherwise.

    The cast is an ``astype`` node, so the float32 input's gradient comes back float32.
    """
    if {a.dtype, b.dtype} != {"float32", "float64"}:
        raise TypeError(f"{op}: dtypes differ, {a.dtype} and {b.dtype}")
    return astype(a, "float64"), astype(b, "float64")


class BinaryOp(TensorOp):
    """Base of element-wise ops on two tensors with NumPy broadcasting."""

    name = "binary"

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:  # type: ignore[override]
        # The hot path of every element-wise op: checks read each NDArray once, and
        # the node is built directly (no generic argument packing).
        if not isinstance(a, Tensor):
            check_tensor(self.name, a)
        if not isinstance(b, Tensor):
            check_tensor(self.name, b)
        x, y = a.cached_data, b.cached_data
        if x is None or y is None:
            x, y = a.realize_cached_data(), b.realize_cached_data()  # raises, saying why
        if x.device is not y.device and x.device != y.device:
            raise ValueError(
                f"{self.name}: tensors are on different devices, {x.device} and {y.device}"
            )
        if x.dtype != y.dtype:
            return self(*promote(self.name, a, b))
        if x.shape != y.shape:
            try:
                broadcast_shapes(x.shape, y.shape)
            except ValueError:
                raise ValueError(
                    f"{self.name}: shapes {a.shape}, {b.shape} do not broadcast"
                ) from None
        return Tensor._node(self, (a, b), self.compute(x, y))  # type: ignore[return-value]
