"""Fused layers: batch norm, layer norm and softmax cross-entropy, each as one op.

The forward passes (and, for the norms and the cross-entropy, the backward passes) run
through :mod:`needle.backend_ndarray.fused`, which uses a backend's optional kernel
(``batchnorm_forward``/``_backward``, ``layernorm_forward``/``_backward``,
``softmax_xent``/``_backward``) when the device declares it and a composition of NDArray
operations otherwise. Each backward pass is itself a fused op whose gradient is written
with Tensor ops, so gradients can be differentiated again.

Notation of the gradients: along the normalised axis (size ``N``), ``xh = (x - mean) * r``
with ``r = 1 / sqrt(var + eps)`` and ``P(u) = r / N * (N u - sum(u) - xh * sum(u xh))``.
``P`` is self-adjoint (its Jacobian ``d xh_i / d x_j`` is symmetric), which gives the
gradient of a backward pass with respect to its upstream gradient in closed form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import Tensor, TensorOp, TensorTuple, TensorTupleOp
from ..backend_ndarray import NDArray
from ..backend_ndarray import fused as _fused
from ..backend_ndarray.capture import host_check
from ._helpers import check_same_device, check_tensor
from .reduction import summation
from .shape import broadcast_to, reshape


# --- Tensor-op helpers (gradients of the backward passes) ------------------------------
def _bsum(u: Tensor, ax: int) -> Tensor:
    return broadcast_to(summation(u, (ax,), keepdims=True), u.shape)


def _normalised(x: Tensor, ax: int, eps: float) -> tuple[Tensor, Tensor, int]:
    """``(xh, r, N)`` of ``x`` along ``ax``, with Tensor ops."""
    n = x.shape[ax]
    xc = x - _bsum(x, ax) / float(n)
    var = _bsum(xc * xc, ax) / float(n)
    r = (var + eps) ** -0.5
    return xc * r, r, n


def _p(u: Tensor, xh: Tensor, r: Tensor, ax: int, n: int) -> Tensor:
    """``P(u)`` (see the module docstring)."""
    return (u * float(n) - _bsum(u, ax) - xh * _bsum(u * xh, ax)) * r / float(n)


def _q(c: Tensor, u: Tensor, xh: Tensor, r: Tensor, ax: int, n: int) -> Tensor:
    """d/dx of ``<c, P(u)>`` (both held fixed)."""
    su, sc = _bsum(u, ax), _bsum(c, ax)
    s2, t = _bsum(u * xh, ax), _bsum(c * xh, ax)
    k = _bsum(c * u, ax) * float(n) - su * sc - t * s2
    r2 = r * r / float(n * n)
    return -(r2 * (xh * k + s2 * (c * float(n) - sc - xh * t) + t * (u * float(n) - su - xh * s2)))


def _row(v: Tensor, like: Tensor) -> Tensor:
    """A (c,) tensor broadcast over the rows of a 2-D ``like``."""
    return broadcast_to(reshape(v, (1, v.shape[0])), like.shape)


# --- batch norm and layer norm ----------------------------------------------------------
class _Norm(TensorOp):
    """Batch norm or layer norm (:attr:`kind`) of a 2-D ``x`` with weight and bias; after
    the forward pass, :attr:`stats` holds the means and biased variances (an NDArray)."""

    kind = ""

    def __init__(self, eps: float) -> None:
        self.eps = float(eps)
        self.stats: NDArray | None = None

    def compute(self, x: NDArray, w: NDArray, b: NDArray) -> NDArray:  # type: ignore[override]
        forward = _fused.batch_norm_forward if self.kind == "batch" else _fused.layer_norm_forward
        y, self.stats = forward(x, w, b, self.eps)
        return y

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, ...]:
        x, w, _ = node.inputs
        t = NormBackward(self.kind, self.eps, self.stats)(x, out_grad, w)
        return t[0], t[1], t[2]


class BatchNorm(_Norm):
    """Training batch norm of ``x`` (m, c) per column with weight and bias (c,).

    After the forward pass, :attr:`stats` holds the batch means and biased variances as
    a (2, c) NDArray (the running statistics are updated from it).
    """

    kind = "batch"


class LayerNorm(_Norm):
    """Layer norm of each row of ``x`` (r, d) with weight and bias (d,)."""

    kind = "layer"


class NormBackward(TensorTupleOp):
    """``(dx, dw, db)`` of :class:`BatchNorm` (``kind="batch"``) or :class:`LayerNorm`
    (``kind="layer"``) from ``(x, dy, w)``; ``stats`` are the forward pass's (an NDArray,
    or None to recompute them)."""

    def __init__(self, kind: str, eps: float, stats: NDArray | None = None) -> None:
        if kind not in ("batch", "layer"):
            raise ValueError(f"NormBackward: kind must be 'batch' or 'layer', got {kind!r}")
        self.kind, self.eps, self.stats = kind, float(eps), stats

    def compute(self, x: NDArray, dy: NDArray, w: NDArray) -> tuple[NDArray, ...]:  # type: ignore[override]
        forward = _fused.batch_norm_forward if self.kind == "batch" else _fused.layer_norm_forward
        backward = (
            _fused.batch_norm_backward if self.kind == "batch" else _fused.layer_norm_backward
        )
        stats = self.stats
        if stats is None:
            zeros = NDArray.make(w.shape, device=w.device, dtype=w.dtype)
            zeros.fill(0.0)
            stats = forward(x, w, zeros, self.eps)[1]
        return backward(x, dy, w, stats, self.eps)

    def gradient(self, out_grad: TensorTuple, node: TensorTuple) -> tuple[Tensor, ...]:  # type: ignore[override]
        x, g, w = node.inputs
        a_dx, a_dw, a_db = out_grad[0], out_grad[1], out_grad[2]
        ax = 0 if self.kind == "batch" else 1
        xh, r, n = _normalised(x, ax, self.eps)
        wb, a_w = _row(w, x), _row(a_dw, x)
        if self.kind == "batch":  # dx = W P(g)
            u, c = g, wb * a_dx
            p_c = _p(c, xh, r, ax, n)
            d_g = p_c
            d_w = summation(a_dx * _p(g, xh, r, ax, n), (0,))
        else:  # dx = P(W g)
            u, c = wb * g, a_dx
            p_c = _p(c, xh, r, ax, n)
            d_g = wb * p_c
            d_w = summation(p_c * g, (0,))
        d_g = d_g + a_w * xh + _row(a_db, x)
        d_x = _q(c, u, xh, r, ax, n) + _p(a_w * g, xh, r, ax, n)
        return d_x, d_g, d_w


class BatchNormEval(TensorOp):
    """Batch norm of ``x`` (m, c) with given statistics: inputs x, weight, bias, running
    mean, running variance (all (c,) but x)."""

    def __init__(self, eps: float) -> None:
        self.eps = float(eps)

    def compute(  # type: ignore[override]
        self, x: NDArray, w: NDArray, b: NDArray, mean: NDArray, var: NDArray
    ) -> NDArray:
        return _fused.batch_norm_eval(x, w, b, mean, var, self.eps)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, ...]:
        x, w, _, mean, var = node.inputs
        r = (var + self.eps) ** -0.5
        xc = x - _row(mean, x)
        g_w = out_grad * _row(w, x)
        d_x = g_w * _row(r, x)
        d_w = summation(out_grad * xc * _row(r, x), (0,))
        d_b = summation(out_grad, (0,))
        d_mean = -summation(d_x, (0,))
        d_var = summation(g_w * xc, (0,)) * (r * r * r) * -0.5
        return d_x, d_w, d_b, d_mean, d_var


# --- softmax cross-entropy --------------------------------------------------------------
class SoftmaxCrossEntropy(TensorOp):
    """Mean over rows of ``logsumexp(row) - row[label]`` for (n, k) logits and class
    indices (n,) stored in the logits' dtype (labels get no gradient)."""

    def compute(self, logits: NDArray, labels: NDArray) -> NDArray:  # type: ignore[override]
        n = logits.shape[0]
        return _fused.softmax_xent(logits, labels).sum() / float(max(n, 1))

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, None]:
        logits, labels = node.inputs
        scale = reshape(out_grad, (1,)) / float(max(logits.shape[0], 1))
        return SoftmaxCrossEntropyBackward()(logits, labels, scale), None


class SoftmaxCrossEntropyBackward(TensorOp):
    """``(softmax(logits) - one_hot(labels)) * scale`` with ``scale`` of shape (1,)."""

    def compute(self, logits: NDArray, labels: NDArray, scale: NDArray) -> NDArray:  # type: ignore[override]
        return _fused.softmax_xent_backward(logits, labels, scale)

    def gradient(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor, None, Tensor]:
        from .compare import one_hot
        from .logarithmic import softmax

        logits, labels, scale = node.inputs
        k = logits.shape[1]
        p = softmax(logits)
        s = broadcast_to(reshape(scale, (1, 1)), logits.shape)
        a = out_grad * p
        d_logits = (a - p * _bsum(a, 1)) * s
        hot = one_hot(k, labels.detach())
        d_scale = reshape(summation(out_grad * (p - hot)), (1,))
        return d_logits, None, d_scale


# --- functional wrappers -----------------------------------------------------------------
def _check_norm(op: str, x: Any, w: Any, b: Any, size: int) -> None:
    for t in (x, w, b):
        check_tensor(op, t)
    check_same_device(op, x, w, b)
    if x.ndim != 2:
        raise ValueError(f"{op}: expected a 2-D input, got shape {x.shape}")
    for name, t in (("weight", w), ("bias", b)):
        if t.shape != (size,):
            raise ValueError(f"{op}: {name} must have shape ({size},), got {t.shape}")
        if t.dtype != x.dtype:
            raise TypeError(f"{op}: {name} dtype {t.dtype} differs from input dtype {x.dtype}")


def batch_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Training batch norm of ``x`` (m, c) over its rows, per column (batch statistics)."""
    _check_norm("batch_norm", x, weight, bias, x.shape[-1] if x.ndim else 0)
    if x.shape[0] < 1:
        raise ValueError(f"batch_norm: needs at least one row, got shape {x.shape}")
    return BatchNorm(eps)(x, weight, bias)


def batch_norm_eval(
    x: Tensor,
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    eps: float = 1e-5,
) -> Tensor:
    """Batch norm of ``x`` (m, c) with the given per-column mean and variance."""
    _check_norm("batch_norm_eval", x, weight, bias, x.shape[-1] if x.ndim else 0)
    _check_norm("batch_norm_eval", x, running_mean, running_var, x.shape[-1])
    return BatchNormEval(eps)(x, weight, bias, running_mean, running_var)


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Layer norm of each row of ``x`` (r, d) over its d columns."""
    _check_norm("layer_norm", x, weight, bias, x.shape[-1] if x.ndim else 0)
    if x.shape[1] < 1:
        raise ValueError(f"layer_norm: needs at least one column, got shape {x.shape}")
    return LayerNorm(eps)(x, weight, bias)


def softmax_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of (n, k) logits against class indices ``labels`` (n,), a
    tensor in the logits' dtype on their device (read on the device only)."""
    check_tensor("softmax_cross_entropy", logits)
    check_tensor("softmax_cross_entropy", labels)
    check_same_device("softmax_cross_entropy", logits, labels)
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must be (n, k), got {logits.shape}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(
            f"softmax_cross_entropy: {logits.shape[0]} rows of logits but labels of shape "
            f"{labels.shape}"
        )
    if labels.dtype != logits.dtype:
        raise TypeError(
            f"softmax_cross_entropy: labels dtype {labels.dtype} differs from logits "
            f"dtype {logits.dtype}"
        )
    with host_check():  # an argument check (a replayed step skips it)
        values = labels.numpy()
    if values.size and not np.all(np.mod(values, 1) == 0):
        raise ValueError(
            "softmax_cross_entropy: labels must be whole numbers (class indices), "
            f"got {values[np.mod(values, 1) != 0][0]}"
        )
    if values.size and (values.min() < 0 or values.max() >= logits.shape[1]):
        raise IndexError(
            f"softmax_cross_entropy: labels must lie in [0, {logits.shape[1]}), "
            f"got {values.min()}..{values.max()}"
        )
    return SoftmaxCrossEntropy()(logits, labels.detach())


__all__ = [
    "BatchNorm",
    "BatchNormEval",
    "LayerNorm",
    "NormBackward",
    "SoftmaxCrossEntropy",
    "SoftmaxCrossEntropyBackward",
    "batch_norm",
    "batch_norm_eval",
    "layer_norm",
    "softmax_cross_entropy",
]
