"""Tuple plumbing: make_tuple, tuple_get_item; and astype."""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp, TensorTuple, TensorTupleOp, Value
from ..backend_ndarray import NDArray, full, normalize_dtype


class MakeTensorTuple(TensorTupleOp):
    def compute(self, *args: NDArray) -> tuple[NDArray, ...]:
        return tuple(args)

    def gradient(self, out_grad: Value, node: Value) -> tuple[Value, ...]:
        return tuple(out_grad[i] for i in range(len(out_grad)))  # type: ignore[index,arg-type]


class TupleGetItem(TensorOp):
    def __init__(self, index: int) -> None:
        self.index = index

    @property
    def tuple_index(self) -> int:
        """Tells the backward pass to collect this element's adjoint sparsely."""
        return self.index

    def compute(self, a: tuple[NDArray, ...]) -> NDArray:  # type: ignore[override]
        return a[self.index]

    def gradient(self, out_grad: Tensor, node: Tensor) -> TensorTuple:
        # Not reached by Tensor.backward (it collects tuple adjoints sparsely through
        # ``tuple_index``); kept so the op is complete when called directly.
        parts = node.inputs[0].realize_cached_data()
        grads = [
            out_grad
            if i == self.index
            else Tensor.make_const(full(p.shape, 0.0, dtype=p.dtype, device=p.device))
            for i, p in enumerate(parts)
        ]
        return make_tuple(*grads)


class AsType(TensorOp):
    def __init__(self, dtype: str) -> None:
        self.dtype = dtype

    def compute(self, a: NDArray) -> NDArray:
        return a.astype(self.dtype)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return astype(out_grad, node.inputs[0].dtype)


def make_tuple(*args: Tensor) -> TensorTuple:
    """A TensorTuple of ``args``."""
    return MakeTensorTuple()(*args)


def tuple_get_item(value: TensorTuple, index: int) -> Tensor:
    """Element ``index`` of a TensorTuple."""
    n = len(value)
    if not -n <= index < n:
        raise IndexError(f"tuple index {index} is out of range for a tuple of {n} tensors")
    return TupleGetItem(index % n)(value)


def astype(a: Tensor, dtype: Any) -> Tensor:
    """``a`` converted to ``dtype`` (the gradient converts back)."""
    dtype = a.device.check_dtype(normalize_dtype(dtype))
    return a if dtype == a.dtype else AsType(dtype)(a)
