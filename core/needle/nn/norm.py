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
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"{type(self).__name__}: expected {self.dim} features, got shape {x.shape}"
            )
        return self._normalise(x)

    def _normalise(self, x: Tensor) -> Tensor:
        """Batch norm of the rows of ``x`` (m, dim) per column: one fused op."""
        if not self.training:
            return ops.batch_norm_eval(
                x, self.weight, self.bias, self.running_mean, self.running_var, self.eps
            )
        op = ops.BatchNorm(self.eps)
        y = op(x, self.weight, self.bias)
        mean, var = ops.split(Tensor.make_const(op.stats), 0)
        with no_grad():
            m = self.momentum
            self.running_mean = (self.running_mean * (1 - m) + mean * m).detach()
            self.running_var = (self.running_var * (1 - m) + var * m).detach()
        return y


class BatchNorm2d(BatchNorm1d):
    """Batch normalisation of ``(N, C, H, W)`` inputs over N, H and W, per channel.

    ``layout="NHWC"`` takes and returns ``(N, H, W, C)`` activations instead, with no
    transposes (the model zoo keeps activations NHWC between layers). The parameters,
    buffers and ``state_dict`` keys are the same in both layouts.
    """

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        device: Any = None,
        dtype: str = "float32",
        layout: str = "NCHW",
    ) -> None:
        super().__init__(dim, eps, momentum, device=device, dtype=dtype)
        if layout not in ("NCHW", "NHWC"):
            raise ValueError(f"BatchNorm2d: layout must be 'NCHW' or 'NHWC', got {layout!r}")
        self.layout = layout

    def extra_repr(self) -> str:
        extra = "" if self.layout == "NCHW" else f", layout={self.layout!r}"
        return super().extra_repr() + extra

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"BatchNorm2d: expected a 4-D input, got shape {x.shape}")
        if self.layout == "NHWC":
            n, h, w, c = x.shape
        else:
            n, c, h, w = x.shape
        if c != self.dim:
            raise ValueError(
                f"BatchNorm2d: expected {self.dim} channels, got shape {x.shape} ({self.layout})"
            )
        if self.layout == "NHWC":
            return self._normalise(x.reshape((n * h * w, c))).reshape((n, h, w, c))
        flat = x.permute((0, 2, 3, 1)).reshape((n * h * w, c))
        return self._normalise(flat).reshape((n, h, w, c)).permute((0, 3, 1, 2))


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
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(f"LayerNorm1d: expected last axis {self.dim}, got shape {x.shape}")
        rows = x.size // self.dim
        y = ops.layer_norm(x.reshape((rows, self.dim)), self.weight, self.bias, self.eps)
        return y.reshape(x.shape)
