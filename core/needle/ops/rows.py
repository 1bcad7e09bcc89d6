"""Row gathers and their adjoint: the embedding lookup as two ops.

``take_rows(w, ids)`` is ``w[ids]`` for a 2-D table ``w`` and ``ids`` of any shape holding
row indices as whole numbers (in ``w``'s dtype: needle's dtypes are floats, so float32
ids are exact up to 2**24). Its gradient scatter-adds the output gradient's rows into
zeros of ``w``'s shape (``scatter_add_rows``), whose gradient is again a gather. Both run
through :mod:`needle.backend_ndarray.fused`: the optional kernels ``take_rows`` and
``scatter_add_rows`` check the ids on the device (``IndexError`` naming the kernel and
the id) and sum repeated ids in increasing position order; without them the composed
fallback multiplies by a one-hot matrix built on the device (range checked on the host
in an argument check that a replayed step skips), or, for one-hot matrices past 2**24
elements, gathers on the host, a host read that makes ``needle.compile`` refuse the step
on that backend.
"""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray
from ..backend_ndarray import fused as _fused
from ._helpers import check_same_device, check_tensor
from .tuples import astype


class TakeRows(TensorOp):
    """``w[ids]``: inputs the table ``w`` (n_rows, width) and ``ids`` (no gradient)."""

    def compute(self, w: NDArray, ids: NDArray) -> NDArray:  # type: ignore[override]
        return _fused.take_rows(w, ids)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, None]:
        w, ids = node.inputs
        return ScatterAddRows(w.shape[0])(out_grad, ids.detach()), None


class ScatterAddRows(TensorOp):
    """Zeros ``(n_rows, width)`` with row ``g[k]`` added at row ``ids[k]``: inputs ``g``
    (``ids.shape + (width,)``) and ``ids`` (no gradient)."""

    def __init__(self, n_rows: int) -> None:
        self.n_rows = int(n_rows)

    def compute(self, g: NDArray, ids: NDArray) -> NDArray:  # type: ignore[override]
        return _fused.scatter_add_rows(g, ids, self.n_rows)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, None]:
        _, ids = node.inputs
        return TakeRows()(out_grad, ids.detach()), None


def _ids(op: str, ids: Any, like: Tensor) -> Tensor:
    """``ids`` as a constant tensor in ``like``'s dtype on its device."""
    if not isinstance(ids, Tensor):
        return Tensor(ids, device=like.device, dtype=like.dtype, requires_grad=False)
    check_same_device(op, like, ids)
    return astype(ids.detach(), like.dtype)


def take_rows(weight: Tensor, ids: Any) -> Tensor:
    """Rows ``weight[ids]`` of a 2-D ``weight``: shape ``ids.shape + (weight.shape[1],)``.

    ``ids`` is a tensor on ``weight``'s device (converted to its dtype; no gradient) or
    anything ``Tensor`` accepts. An id that is not a whole number in ``[0, rows)`` raises
    ``IndexError``.
    """
    check_tensor("take_rows", weight)
    if weight.ndim != 2:
        raise ValueError(f"take_rows: expected a 2-D table (rows, width), got {weight.shape}")
    return TakeRows()(weight, _ids("take_rows", ids, weight))


def scatter_add_rows(grad: Tensor, ids: Any, n_rows: int) -> Tensor:
    """Zeros ``(n_rows, width)`` with ``grad``'s rows added at rows ``ids`` (the adjoint of
    :func:`take_rows`); ``grad`` has shape ``ids.shape + (width,)``."""
    check_tensor("scatter_add_rows", grad)
    idt = _ids("scatter_add_rows", ids, grad)
    if grad.shape[:-1] != idt.shape or grad.ndim != idt.ndim + 1:
        raise ValueError(
            f"scatter_add_rows: rows of shape {grad.shape} do not match ids of shape {idt.shape}"
        )
    if int(n_rows) < 0:
        raise ValueError(f"scatter_add_rows: negative row count {n_rows}")
    return ScatterAddRows(int(n_rows))(grad, idt)


__all__ = ["ScatterAddRows", "TakeRows", "scatter_add_rows", "take_rows"]
