"""Element-wise functions: exp, log, relu, tanh, sigmoid, sqrt, sin, cos, abs."""

from __future__ import annotations

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray
from ._helpers import check_tensor


class Exp(TensorOp):
    def compute(self, a: NDArray) -> NDArray:
        return a.exp()

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad * node  # d exp(a) = exp(a)


class Log(TensorOp):
    def compute(self, a: NDArray) -> NDArray:
        return a.log()

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad / node.inputs[0]


class ReLU(TensorOp):
    def compute(self, a: NDArray) -> NDArray:
        return a.maximum(0.0)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        mask = node.inputs[0].realize_cached_data() > 0.0  # 1 where a > 0: a constant
        return out_grad * Tensor.make_const(mask)


class Tanh(TensorOp):
    def compute(self, a: NDArray) -> NDArray:
        return a.tanh()

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad * (1.0 - node * node)  # 1 - tanh^2


class Sigmoid(TensorOp):
    def compute(self, a: NDArray) -> NDArray:
        return 1.0 / ((-a).exp() + 1.0)

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad * node * (1.0 - node)  # s (1 - s)


class Sqrt(TensorOp):
    def compute(self, a: NDArray) -> NDArray:
        return a.sqrt()

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad / (node * 2.0)


class Sin(TensorOp):
    def compute(self, a: NDArray) -> NDArray:
        return a.sin()

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return out_grad * cos(node.inputs[0])


class Cos(TensorOp):
    def compute(self, a: NDArray) -> NDArray:
        return a.cos()

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        return -(out_grad * sin(node.inputs[0]))


class Abs(TensorOp):
    def compute(self, a: NDArray) -> NDArray:
        return a.abs()

    def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor:
        a = node.inputs[0].realize_cached_data()
        sign = (a > 0.0) - (a < 0.0)
        return out_grad * Tensor.make_const(sign)


def exp(a: Tensor) -> Tensor:
    """e ** a."""
    return Exp()(check_tensor("exp", a))


def log(a: Tensor) -> Tensor:
    """Natural logarithm."""
    return Log()(check_tensor("log", a))


def relu(a: Tensor) -> Tensor:
    """max(a, 0)."""
    return ReLU()(check_tensor("relu", a))


def tanh(a: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return Tanh()(check_tensor("tanh", a))


def sigmoid(a: Tensor) -> Tensor:
    """1 / (1 + e ** -a)."""
    return Sigmoid()(check_tensor("sigmoid", a))


def sqrt(a: Tensor) -> Tensor:
    """Square root."""
    return Sqrt()(check_tensor("sqrt", a))


def sin(a: Tensor) -> Tensor:
    """Sine."""
    return Sin()(check_tensor("sin", a))


def cos(a: Tensor) -> Tensor:
    """Cosine."""
    return Cos()(check_tensor("cos", a))


def abs(a: Tensor) -> Tensor:
    """|a|."""
    return Abs()(check_tensor("abs", a))
