"""Argument checks shared by every CUDA kernel (pure Python, no CuPy).

Every kernel of :mod:`needle_cuda.table` calls these before it launches anything, so a
bad call raises ``TypeError``/``ValueError``/``IndexError`` naming the kernel instead of
reaching the GPU (where it could read or write out of bounds). The rules mirror the NumPy
reference backend (``needle_numpy.kernels``):

* handles must be buffers of this backend, on the kernel table's device;
* element-wise kernels need every operand to hold at least ``out.size`` elements, all of
  one dtype;
* a strided view (shape, strides, offset) must have matching lengths, no negative entry,
  and its last element must lie inside the buffer (an empty view is always valid);
* row reductions need ``a.size >= out.size * reduce_size``.

Functions take duck-typed handles (anything with ``size`` and ``dtype``, and ``device``
when a device is checked), so they are tested without a GPU.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any

SUPPORTED_DTYPES: tuple[str, ...] = ("float32", "float64")
MAX_DIMS = 8
"""Most dimensions a strided view may have after merging contiguous dimensions."""


def as_int(kernel: str, what: str, value: Any) -> int:
    """``value`` as a Python int (bool and float refused) or TypeError."""
    if isinstance(value, bool):
        raise TypeError(f"{kernel}: {what} must be an integer, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{kernel}: {what} must be an integer, got {type(value).__name__} {value!r}"
        ) from None


def as_int_tuple(kernel: str, what: str, values: Any) -> tuple[int, ...]:
    try:
        items = tuple(values)
    except TypeError:
        raise TypeError(
            f"{kernel}: {what} must be a sequence of integers, got {values!r}"
        ) from None
    return tuple(as_int(kernel, what, v) for v in items)


def check_dtype(kernel: str, dtype: Any) -> str:
    """The dtype name, or TypeError when the backend does not support it."""
    name = getattr(dtype, "name", dtype)
    if not isinstance(name, str) or name not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{kernel}: the cuda backend does not support dtype {dtype!r} "
            f"(supported: {', '.join(SUPPORTED_DTYPES)})"
        )
    return name


def check_nonneg(kernel: str, what: str, value: Any) -> int:
    v = as_int(kernel, what, value)
    if v < 0:
        raise ValueError(f"{kernel}: {what} must be >= 0, got {v}")
    return v


def check_handles(
    kernel: str, handles: Iterable[Any], handle_type: type | None = None, device: int | None = None
) -> None:
    """Each handle is a ``handle_type`` (when given) on ``device`` (when given)."""
    for h in handles:
        if handle_type is not None and not isinstance(h, handle_type):
            raise TypeError(f"{kernel}: expected a cuda-backend buffer, got {type(h).__name__}")
        if device is not None:
            hd = getattr(h, "device", device)
            if hd != device:
                raise ValueError(
                    f"{kernel}: buffer lives on cuda:{hd} but the kernel runs on cuda:{device}; "
                    "move it first"
                )


def check_same_dtype(kernel: str, *handles: Any) -> str:
    dtype = handles[0].dtype
    for h in handles[1:]:
        if h.dtype != dtype:
            raise TypeError(f"{kernel}: dtype mismatch {dtype} vs {h.dtype}")
    return check_dtype(kernel, dtype)


def check_min_size(kernel: str, size: int, *handles: Any) -> None:
    for h in handles:
        if h.size < size:
            raise ValueError(f"{kernel}: buffer of {h.size} elements, need {size}")


def check_flat(kernel: str, size: int, *handles: Any) -> str:
    """Like the reference ``_flat``: every handle holds >= size elements, one dtype."""
    check_min_size(kernel, size, *handles)
    return check_same_dtype(kernel, *handles)


def check_view(
    kernel: str, buffer_size: int, shape: Any, strides: Any, offset: Any
) -> tuple[tuple[int, ...], tuple[int, ...], int, int]:
    """Validate a strided view of a buffer of ``buffer_size`` elements.

    Returns ``(shape, strides, offset, n)`` as ints, with ``n`` the view's element count.
    Raises ValueError (length mismatch, negative entries) or IndexError (the view reaches
    past the buffer). An empty view is valid whatever its strides and offset.
    """
    shape = as_int_tuple(kernel, "shape", shape)
    strides = as_int_tuple(kernel, "strides", strides)
    offset = as_int(kernel, "offset", offset)
    if len(shape) != len(strides):
        raise ValueError(f"{kernel}: shape {shape} and strides {strides} differ in length")
    if any(s < 0 for s in shape) or any(s < 0 for s in strides) or offset < 0:
        raise ValueError(f"{kernel}: negative shape, stride or offset {shape} {strides} {offset}")
    n = 1
    for d in shape:
        n *= d
    if n == 0:
        return shape, strides, offset, 0
    last = offset + sum((d - 1) * s for d, s in zip(shape, strides))
    if last >= buffer_size:
        raise IndexError(
            f"{kernel}: view (shape {shape}, strides {strides}, offset {offset}) reaches "
            f"element {last} of a buffer of {buffer_size}"
        )
    return shape, strides, offset, n


def simplify_layout(
    shape: Sequence[int], strides: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Drop size-1 dimensions and merge neighbours that are contiguous with each other
    (``strides[i] == strides[i+1] * shape[i+1]``). The row-major element order and the
    buffer index of every element are unchanged. Returns at least one dimension."""
    dims = [(d, s) for d, s in zip(shape, strides) if d != 1]
    merged: list[list[int]] = []
    for d, s in dims:
        if merged and merged[-1][1] == s * d:
            merged[-1][0] *= d
            merged[-1][1] = s
        else:
            merged.append([d, s])
    if not merged:
        return (1,), (1,)
    return tuple(m[0] for m in merged), tuple(m[1] for m in merged)


def layout_args(kernel: str, shape: Sequence[int], strides: Sequence[int]) -> tuple[int, ...]:
    """The ``(ndim, d0..d7, s0..s7)`` kernel arguments of a checked view, after
    :func:`simplify_layout`; ValueError when more than :data:`MAX_DIMS` remain."""
    sh, st = simplify_layout(shape, strides)
    if len(sh) > MAX_DIMS:
        raise ValueError(
            f"{kernel}: the cuda backend supports views of at most {MAX_DIMS} non-mergeable "
            f"dimensions; got shape {tuple(shape)} with strides {tuple(strides)} "
            f"({len(sh)} after merging)"
        )
    pad = MAX_DIMS - len(sh)
    return (len(sh), *sh, *([1] * pad), *st, *([0] * pad))


def is_row_major(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """True when the view's elements are consecutive in the buffer (compact)."""
    sh, st = simplify_layout(shape, strides)
    return len(sh) == 1 and st[0] == 1


def check_rows(
    kernel: str, a: Any, out: Any, reduce_size: Any, min_reduce: int = 0
) -> tuple[int, int, str]:
    """Row reduction: ``(rows, reduce_size, dtype)``; a must hold rows * reduce_size."""
    rs = as_int(kernel, "reduce_size", reduce_size)
    if rs < min_reduce:
        if min_reduce == 0:
            raise ValueError(f"{kernel}: negative reduce_size {rs}")
        raise ValueError(f"{kernel}: reduce_size must be >= {min_reduce}, got {rs}")
    rows = out.size
    check_min_size(kernel, rows * rs, a)
    return rows, rs, check_same_dtype(kernel, a, out)


def check_softmax(kernel: str, a: Any, out: Any, reduce_size: Any) -> tuple[int, int, str]:
    """Softmax over rows of a: ``(rows, reduce_size, dtype)`` with rows = a.size // rs."""
    rs = as_int(kernel, "reduce_size", reduce_size)
    if rs < 1:
        raise ValueError(f"{kernel}: reduce_size must be >= 1, got {rs}")
    rows = a.size // rs
    return rows, rs, check_flat(kernel, rows * rs, a, out)


def check_matmul(
    kernel: str, a: Any, b: Any, out: Any, batch: Any, m: Any, n: Any, p: Any
) -> tuple[int, int, int, int, str]:
    """(batch, m, n, p) @ checks: non-negative sizes, buffers large enough, one dtype."""
    batch = check_nonneg(kernel, "batch", batch)
    m, n, p = (check_nonneg(kernel, w, v) for w, v in (("m", m), ("n", n), ("p", p)))
    check_min_size(kernel, batch * m * n, a)
    check_min_size(kernel, batch * n * p, b)
    check_min_size(kernel, batch * m * p, out)
    if not (a.dtype == b.dtype == out.dtype):
        raise TypeError(f"{kernel}: dtype mismatch {a.dtype}, {b.dtype}, {out.dtype}")
    return batch, m, n, p, check_dtype(kernel, out.dtype)


def check_conv2d(
    kernel: str,
    x: Any,
    w: Any,
    out: Any,
    n: Any,
    h: Any,
    w_: Any,
    c_in: Any,
    k: Any,
    c_out: Any,
    stride: Any,
) -> tuple[int, int, int, int, int, int, int, int, int, str]:
    """Valid NHWC convolution: returns (n, h, w_, c_in, k, c_out, stride, ho, wo, dtype)."""
    n, h, w_, c_in, k, c_out = (
        check_nonneg(kernel, name, v)
        for name, v in (("n", n), ("h", h), ("w_", w_), ("c_in", c_in), ("k", k), ("c_out", c_out))
    )
    stride = as_int(kernel, "stride", stride)
    if stride < 1:
        raise ValueError(f"{kernel}: stride must be >= 1, got {stride}")
    if k < 1 or k > h or k > w_:
        raise ValueError(f"{kernel}: kernel size {k} must be in 1..min(h={h}, w={w_})")
    ho, wo = (h - k) // stride + 1, (w_ - k) // stride + 1
    check_min_size(kernel, n * h * w_ * c_in, x)
    check_min_size(kernel, k * k * c_in * c_out, w)
    check_min_size(kernel, n * ho * wo * c_out, out)
    dtype = check_same_dtype(kernel, x, w, out)
    return n, h, w_, c_in, k, c_out, stride, ho, wo, dtype
