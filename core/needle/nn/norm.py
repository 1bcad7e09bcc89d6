"""Normalisation layers: BatchNorm1d, BatchNorm2d, LayerNorm1d."""

from __future__ import annotations

from typing import Any

from .. import init, ops
from ..autograd import Tensor, no_grad
from .module import Module, Parameter


class BatchNorm1d(Module):
    """Batch normalisation of ``(N, dim)`` inputs.

    Training: normalise with the batch mean and biased variance, and update
    ``running = (1 - momentum) * running + momentum * batch`` (biased variance, as in
    the course). Eval: normalise with the running statistics.
    """

    running_mean: Tensor
    running_var: Tensor

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        device: Any = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__()
        self.dim, self.eps, self.momentum = dim, eps, momentum
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_mean", init.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_var", init.ones(dim, device=device, dtype=dtype))

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}, momentum={self.momentum}"

    def forward(self, x: Tensor) -> Tensor:
        n, d = x.shape
        if d != self.dim:
            raise ValueError(
                f"{type(self).__name__}: expected {self.dim} features, got shape {x.shape}"
            )
        if self.training:
            mean = ops.summation(x, (0,)) / float(n)
            centred = x - mean.reshape((1, d)).broadcast_to(x.shape)
            var = ops.summation(centred * centred, (0,)) / float(n)
            with no_grad():
                m = self.momentum
                self.running_mean = (self.running_mean * (1 - m) + mean.detach() * m).detach()
                self.running_var = (self.running_var * (1 - m) + var.detach() * m).detach()
        else:
            mean, var = self.running_mean, self.running_var
            centred = x - mean.reshape((1, d)).broadcast_to(x.shape)
        std = ops.sqrt(var + self.eps).reshape((1, d)).broadcast_to(x.shape)
        w = self.weight.reshape((1, d)).broadcast_to(x.shape)
        b = self.bias.reshape((1, d)).broadcast_to(x.shape)
        return w * (centred / std) + b


class BatchNorm2d(BatchNorm1d):
    """Batch normalisation of ``(N, C, H, W)`` inputs over N, H and W, per channel."""

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        flat = x.permute((0, 2, 3, 1)).reshape((n * h * w, c))
        return super().forward(flat).reshape((n, h, w, c)).permute((0, 3, 1, 2))


class LayerNorm1d(Module):
    """Normalise each row over its last axis (size ``dim``), then scale and shift."""

    def __init__(
        self, dim: int, eps: float = 1e-5, device: Any = None, dtype: str = "float32"
    ) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype))

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}"

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"LayerNorm1d: expected last axis {self.dim}, got shape {x.shape}")
        kept = (*x.shape[:-1], 1)
        axis = x.ndim - 1
        mean = (ops.summation(x, (axis,)) / float(self.dim)).reshape(kept).broadcast_to(x.shape)
        centred = x - mean
        var = (ops.summation(centred * centred, (axis,)) / float(self.dim)).reshape(kept)
        std = ops.sqrt(var + self.eps).broadcast_to(x.shape)
        one = (1,) * (x.ndim - 1) + (self.dim,)
        w = self.weight.reshape(one).broadcast_to(x.shape)
        b = self.bias.reshape(one).broadcast_to(x.shape)
        return w * (centred / std) + b
