"""Element-wise selection: maximum (of two tensors, or a tensor and a number) and where."""

from __future__ import annotations

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray, broadcast_shapes, full
from ..backend_ndarray import where as nd_where
from ._helpers import BinaryOp, check_same_device, check_tensor, is_scalar, unbroadcast


class Maximum(BinaryOp):
    """max(a, b); at ties the gradient is split evenly, half to each input."""

    name = "maximum"

    def compute(self, a: NDArray, b: NDArray) -> NDArray:
        return a.maximum(b)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        a, b = node.inputs
        x, y = a.realize_cached_data(), b.realize_cached_data()
        tie = (x == y) * 0.5
        to_a = Tensor.make_const((x > y) + tie)
        to_b = Tensor.make_const((y > x) + tie)
        return unbroadcast(out_grad * to_a, a.shape), unbroadcast(out_grad * to_b, b.shape)


class MaximumScalar(TensorOp):
    """max(a, scalar); where a == scalar, a gets half the gradient."""

    def __init__(self, scalar: float) -> None:
        self.scalar = scalar

    def compute(self, a: NDArray) -> NDArray:
        return a.maximum(self.scalar)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        x = node.inputs[0].realize_cached_data()
        return out_grad * Tensor.make_const((x > self.scalar) + (x == self.scalar) * 0.5)


def maximum(a: Tensor, b: Tensor | float) -> Tensor:
    """Element-wise max(a, b), broadcasting; ``b`` may be a number.

    The gradient goes to the larger input; at ties it is split evenly (half each), so
    the two partial derivatives always add up to out_grad. ``relu`` instead gives 0 at 0.
    """
    check_tensor("maximum", a)
    if is_scalar(b):
        return MaximumScalar(float(b))(a)
    if not isinstance(b, Tensor):
        raise TypeError(f"maximum: expected a Tensor or a number, got {type(b).__name__}")
    return Maximum()(a, b)


class Where(TensorOp):
    """a where cond != 0 else b; no gradient to cond."""

    def compute(self, cond: NDArray, a: NDArray, b: NDArray) -> NDArray:
        return nd_where(cond, a, b)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[None, Tensor, Tensor]:
        cond, a, b = node.inputs
        c = Tensor.make_const(cond.realize_cached_data())
        zero = Tensor.make_const(full((), 0.0, dtype=out_grad.dtype, device=out_grad.device))
        grad_a = Where()(c, out_grad, zero)
        grad_b = Where()(c, zero, out_grad)
        return None, unbroadcast(grad_a, a.shape), unbroadcast(grad_b, b.shape)


def where(cond: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
    """Pick ``a`` where ``cond`` is non-zero and ``b`` elsewhere, broadcasting all three.

    ``a`` or ``b`` may be a number. Gradients flow to ``a`` and ``b``, never to ``cond``.

    Raises:
        ValueError: the shapes do not broadcast, or the tensors are on different devices.
        TypeError: dtypes differ.
    """
    from ..autograd import as_tensor

    check_tensor("where", cond)
    ta, tb = (
        check_tensor("where", as_tensor(float(x), cond) if is_scalar(x) else x) for x in (a, b)
    )
    check_same_device("where", cond, ta, tb)
    if not cond.dtype == ta.dtype == tb.dtype:
        raise TypeError(f"where: dtypes differ, {cond.dtype}, {ta.dtype} and {tb.dtype}")
    try:
        broadcast_shapes(cond.shape, ta.shape, tb.shape)
    except ValueError:
        raise ValueError(
            f"where: shapes {cond.shape}, {ta.shape} and {tb.shape} do not broadcast"
        ) from None
    return Where()(cond, ta, tb)
