"""Element-wise arithmetic: add, multiply, divide, power, negate (tensor or scalar)."""

from __future__ import annotations

from typing import Any

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray
from ._helpers import BinaryOp, check_tensor, is_scalar, scalar_value, unbroadcast


class EWiseAdd(BinaryOp):
    name = "add"

    def compute(self, a: NDArray, b: NDArray) -> NDArray:
        return a + b

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        a, b = node.inputs
        return unbroadcast(out_grad, a.shape), unbroadcast(out_grad, b.shape)


class AddScalar(TensorOp):
    def __init__(self, scalar: float) -> None:
        self.scalar = scalar

    def compute(self, a: NDArray) -> NDArray:
        return a + self.scalar

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad


class EWiseSub(BinaryOp):
    name = "subtract"

    def compute(self, a: NDArray, b: NDArray) -> NDArray:
        return a - b

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        a, b = node.inputs
        return unbroadcast(out_grad, a.shape), unbroadcast(-out_grad, b.shape)


class EWiseMul(BinaryOp):
    name = "multiply"

    def compute(self, a: NDArray, b: NDArray) -> NDArray:
        return a * b

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        a, b = node.inputs
        ga = unbroadcast(out_grad * b, a.shape) if a.requires_grad else None
        gb = unbroadcast(out_grad * a, b.shape) if b.requires_grad else None
        return ga, gb  # type: ignore[return-value]


class MulScalar(TensorOp):
    def __init__(self, scalar: float) -> None:
        self.scalar = scalar

    def compute(self, a: NDArray) -> NDArray:
        return a * self.scalar

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad * self.scalar


class EWiseDiv(BinaryOp):
    name = "divide"

    def compute(self, a: NDArray, b: NDArray) -> NDArray:
        return a / b

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        a, b = node.inputs
        # d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2
        return unbroadcast(out_grad / b, a.shape), unbroadcast(-out_grad * a / (b * b), b.shape)


class DivScalar(TensorOp):
    def __init__(self, scalar: float) -> None:
        self.scalar = scalar

    def compute(self, a: NDArray) -> NDArray:
        return a / self.scalar

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad / self.scalar


class EWisePow(BinaryOp):
    """a ** b for two tensors; d/da = b a^(b-1), d/db = a^b log a."""

    name = "power"

    def compute(self, a: NDArray, b: NDArray) -> NDArray:
        return a**b

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        from .unary import log

        a, b = node.inputs
        ga = out_grad * b * a ** (b - 1.0)
        gb = out_grad * node * log(a)
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)


class PowerScalar(TensorOp):
    """a ** scalar; d/da = scalar a^(scalar-1)."""

    def __init__(self, scalar: float) -> None:
        self.scalar = scalar

    def compute(self, a: NDArray) -> NDArray:
        return a**self.scalar

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        a = node.inputs[0]
        if self.scalar == 0:
            return out_grad * 0.0
        return out_grad * self.scalar * power_scalar(a, self.scalar - 1)


class RPowerScalar(TensorOp):
    """scalar ** a; d/da = scalar^a log(scalar)."""

    def __init__(self, scalar: float) -> None:
        self.scalar = scalar

    def compute(self, a: NDArray) -> NDArray:
        return self.scalar**a

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        import math

        return out_grad * node * math.log(self.scalar)


class Negate(TensorOp):
    def compute(self, a: NDArray) -> NDArray:
        return -a

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return -out_grad


def _dispatch(op: str, a: Tensor, b: Any, ewise: type, scalar: type) -> Tensor:
    check_tensor(op, a)
    if isinstance(b, Tensor):
        return ewise()(a, b)
    if is_scalar(b):
        return scalar(scalar_value(b, op))(a)
    raise TypeError(f"{op}: expected a Tensor or a number, got {type(b).__name__}")


# Element-wise ops hold no state, so one instance serves every node (hot path).
_EWISE_ADD, _EWISE_MUL = EWiseAdd(), EWiseMul()


def add(a: Tensor, b: Tensor | float) -> Tensor:
    """a + b, broadcasting; b may be a number."""
    if isinstance(b, Tensor):
        return _EWISE_ADD(a, b)
    return _dispatch("add", a, b, EWiseAdd, AddScalar)


def add_scalar(a: Tensor, scalar: float) -> Tensor:
    return AddScalar(scalar_value(scalar, "add_scalar"))(a)


def subtract(a: Tensor, b: Tensor | float) -> Tensor:
    """a - b, broadcasting; b may be a number."""
    if is_scalar(b):
        return AddScalar(-scalar_value(b, "subtract"))(a)
    return _dispatch("subtract", a, b, EWiseSub, AddScalar)


def multiply(a: Tensor, b: Tensor | float) -> Tensor:
    """a * b, broadcasting; b may be a number."""
    if isinstance(b, Tensor):
        return _EWISE_MUL(a, b)
    return _dispatch("multiply", a, b, EWiseMul, MulScalar)


def mul_scalar(a: Tensor, scalar: float) -> Tensor:
    return MulScalar(scalar_value(scalar, "mul_scalar"))(a)


def divide(a: Tensor, b: Tensor | float) -> Tensor:
    """a / b, broadcasting; b may be a number."""
    return _dispatch("divide", a, b, EWiseDiv, DivScalar)


def divide_scalar(a: Tensor, scalar: float) -> Tensor:
    return DivScalar(scalar_value(scalar, "divide_scalar"))(a)


def power(a: Tensor, b: Tensor | float) -> Tensor:
    """a ** b, broadcasting; b may be a number."""
    return _dispatch("power", a, b, EWisePow, PowerScalar)


def power_scalar(a: Tensor, scalar: float) -> Tensor:
    return PowerScalar(scalar_value(scalar, "power_scalar"))(a)


def rpower_scalar(a: Tensor, scalar: float) -> Tensor:
    """scalar ** a."""
    if not is_scalar(scalar) or scalar <= 0:
        raise ValueError(f"rpower: base must be a positive number, got {scalar!r}")
    return RPowerScalar(scalar_value(scalar, "rpower_scalar"))(a)


def negate(a: Tensor) -> Tensor:
    """-a."""
    return Negate()(check_tensor("negate", a))
