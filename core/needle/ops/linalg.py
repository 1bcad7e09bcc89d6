"""Matrix product (2-D and batched, with broadcast batch dimensions)."""

from __future__ import annotations

from ..autograd import Tensor, TensorOp
from ..backend_ndarray import NDArray, concatenate, full
from ._helpers import check_same_device, check_tensor, promote, unbroadcast


class MatMul(TensorOp):
    def compute(self, a: NDArray, b: NDArray) -> NDArray:
        return a @ b

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        from .shape import reshape, transpose

        a, b = node.inputs
        # C = A B  =>  dA = dC B^T, dB = A^T dC (summed over broadcast batch dims)
        # (an input that needs no gradient, such as a one-hot matrix, gets None)
        ga = unbroadcast(matmul(out_grad, transpose(b)), a.shape) if a.requires_grad else None
        if not b.requires_grad:
            gb = None
        elif b.ndim == 2 and a.ndim > 2 and a.size:
            # (..., m, n) @ (n, p), e.g. a linear layer on a sequence: the sum over the
            # batch of A_i^T dC_i is one 2-D product of the flattened leading axes.
            n, p = b.shape
            gb = matmul(transpose(reshape(a, (a.size // n, n))), reshape(out_grad, (-1, p)))
        else:
            gb = unbroadcast(matmul(transpose(a), out_grad), b.shape)
        return ga, gb  # type: ignore[return-value]


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product of the last two axes; leading (batch) axes broadcast."""
    check_tensor("matmul", a)
    check_tensor("matmul", b)
    check_same_device("matmul", a, b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul: need at least 2-D operands, got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} are not aligned "
            f"({a.shape[-1]} != {b.shape[-2]})"
        )
    if a.dtype != b.dtype:
        a, b = promote("matmul", a, b)
    return MatMul()(a, b)


class MatMulBias(TensorOp):
    """``x @ w + b`` for ``x`` (m, n), ``w`` (n, p), ``b`` (1, p) (shapes unchecked: for
    ``nn.Linear``, whose parameters have them), computed as the one
    product ``[x, 1] @ [w; b]``: no (m, p) broadcast of the bias and no second pass over
    the output to add it. Worth it when the output is much bigger than x and w (a
    language model's decoder); ``nn.Linear`` decides. Gradient: ``dy w^T``, ``x^T dy``
    and the column sums of ``dy``, as Tensor ops."""

    def compute(self, x: NDArray, w: NDArray, b: NDArray) -> NDArray:  # type: ignore[override]
        ones = full((x.shape[0], 1), 1.0, dtype=x.dtype, device=x.device)
        return concatenate((x, ones), 1) @ concatenate((w, b), 0)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, ...]:
        from .reduction import summation
        from .shape import reshape, transpose

        x, w, b = node.inputs
        return (
            matmul(out_grad, transpose(w)),
            matmul(transpose(x), out_grad),
            reshape(summation(out_grad, (0,)), b.shape),
        )
