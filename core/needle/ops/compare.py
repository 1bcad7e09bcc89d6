"""Comparisons (eq, ne, lt, le, gt, ge), argmax and one_hot: results without gradient.

Each returns a constant tensor of 1.0/0.0 (or indices, as floats) in the input dtype,
with ``requires_grad=False``: these functions are piecewise constant, so no graph is
recorded even when the inputs require grad.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor
from ..backend_ndarray import normalize_axis
from ..backend_ndarray import one_hot as nd_one_hot
from ._helpers import check_same_device, check_tensor, is_scalar


def _compare(op: str, a: Tensor, b: Tensor | float) -> Tensor:
    check_tensor(op, a)
    x = a.realize_cached_data()
    if is_scalar(b):
        y: Any = float(b)
    elif isinstance(b, Tensor):
        check_same_device(op, a, b)
        if a.dtype != b.dtype:
            raise TypeError(f"{op}: dtypes differ, {a.dtype} and {b.dtype}")
        y = b.realize_cached_data()
    else:
        raise TypeError(f"{op}: expected a Tensor or a number, got {type(b).__name__}")
    method = {
        "eq": "__eq__",
        "ne": "__ne__",
        "lt": "__lt__",
        "le": "__le__",
        "gt": "__gt__",
        "ge": "__ge__",
    }[op]
    try:
        out = getattr(x, method)(y)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast") from None  # type: ignore[union-attr]
    return Tensor.make_const(out)


def eq(a: Tensor, b: Tensor | float) -> Tensor:
    """1.0 where a == b else 0.0 (broadcasting; no gradient)."""
    return _compare("eq", a, b)


def ne(a: Tensor, b: Tensor | float) -> Tensor:
    """1.0 where a != b else 0.0 (NaN != anything; no gradient)."""
    return _compare("ne", a, b)


def lt(a: Tensor, b: Tensor | float) -> Tensor:
    """1.0 where a < b else 0.0 (no gradient)."""
    return _compare("lt", a, b)


def le(a: Tensor, b: Tensor | float) -> Tensor:
    """1.0 where a <= b else 0.0 (no gradient)."""
    return _compare("le", a, b)


def gt(a: Tensor, b: Tensor | float) -> Tensor:
    """1.0 where a > b else 0.0 (no gradient)."""
    return _compare("gt", a, b)


def ge(a: Tensor, b: Tensor | float) -> Tensor:
    """1.0 where a >= b else 0.0 (no gradient)."""
    return _compare("ge", a, b)


def argmax(a: Tensor, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the first maximum along ``axis`` (of the flattened tensor if ``None``).

    Returns the indices as floats in ``a``'s dtype, with no gradient.

    Raises:
        ValueError: ``a`` is empty or ``axis`` is out of range.
    """
    check_tensor("argmax", a)
    if a.size == 0:
        raise ValueError(f"argmax: empty tensor of shape {a.shape}")
    if axis is not None:
        normalize_axis(axis, a.ndim, "argmax")
    return Tensor.make_const(a.realize_cached_data().argmax(axis, keepdims))


def one_hot(n: int, labels: Tensor) -> Tensor:
    """Indicator rows: ``out[..., k] = 1.0 if labels[...] == k`` for k < n (no gradient).

    ``labels`` holds integer values (as floats); the result has shape
    ``labels.shape + (n,)`` on the labels' device and in their dtype. ``needle.init.one_hot``
    builds the same from NumPy labels.
    """
    check_tensor("one_hot", labels)
    return Tensor.make_const(nd_one_hot(n, labels.realize_cached_data()))
