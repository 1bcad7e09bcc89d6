"""``SyncBatchNorm``: batch normalisation with statistics over every rank's batch."""

from __future__ import annotations

from typing import Any

from .. import ops
from ..autograd import Tensor, no_grad
from .module import Module
from .norm import BatchNorm1d


class SyncBatchNorm(BatchNorm1d):
    """Batch normalisation of ``(N, C)`` or ``(N, C, H, W)`` inputs over all ranks.

    In training, the mean and (biased) variance are those of the union of every rank's
    batch, computed with two all-reduces (sum of ``x``, then sum of squared deviations),
    both differentiable, so the gradient is that of one BatchNorm over the global batch.
    The running statistics are updated with the global values, the same on every rank.
    With one process, or in eval mode, it is exactly :class:`BatchNorm1d`/``2d``.
    ``BatchNorm1d``/``2d`` remain per-rank (as in PyTorch DDP); use
    :meth:`convert_sync_batchnorm` to switch a model over.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 4 and getattr(self, "layout", "NCHW") == "NHWC":  # BatchNorm2d(NHWC)
            n, h, w, c = x.shape
            return self._normalize(x.reshape((n * h * w, c))).reshape((n, h, w, c))
        if x.ndim == 4:
            n, c, h, w = x.shape
            flat = x.permute((0, 2, 3, 1)).reshape((n * h * w, c))
            return self._normalize(flat).reshape((n, h, w, c)).permute((0, 3, 1, 2))
        if x.ndim == 2:
            return self._normalize(x)
        raise ValueError(f"SyncBatchNorm: expected (N, C) or (N, C, H, W) input, got {x.shape}")

    def _normalize(self, x: Tensor) -> Tensor:
        from .. import distributed as dist

        n, d = x.shape
        if d != self.dim:
            raise ValueError(f"SyncBatchNorm: expected {self.dim} features, got shape {x.shape}")
        if not self.training or dist.world_size() == 1:
            return BatchNorm1d.forward(self, x)
        count = Tensor([float(n)], device=x.device, dtype=x.dtype, requires_grad=False)
        total = float(dist.all_reduce(count).numpy()[0])
        mean = dist.all_reduce(ops.summation(x, (0,))) / total
        centred = x - mean.reshape((1, d)).broadcast_to(x.shape)
        var = dist.all_reduce(ops.summation(centred * centred, (0,))) / total
        with no_grad():
            m = self.momentum
            self.running_mean = (self.running_mean * (1 - m) + mean.detach() * m).detach()
            self.running_var = (self.running_var * (1 - m) + var.detach() * m).detach()
        std = ops.sqrt(var + self.eps).reshape((1, d)).broadcast_to(x.shape)
        w = self.weight.reshape((1, d)).broadcast_to(x.shape)
        b = self.bias.reshape((1, d)).broadcast_to(x.shape)
        return w * (centred / std) + b

    @classmethod
    def convert_sync_batchnorm(cls, module: Module) -> Module:
        """Replace every ``BatchNorm1d``/``BatchNorm2d`` in ``module`` (in place) by a
        ``SyncBatchNorm`` sharing its parameters and running statistics; returns
        ``module`` (or the replacement, when ``module`` itself is a BatchNorm)."""

        def convert(bn: Any) -> Any:
            if not isinstance(bn, BatchNorm1d) or isinstance(bn, SyncBatchNorm):
                return bn
            new = cls.__new__(cls)
            new.__dict__.update(bn.__dict__)
            new._buffer_names = list(bn._buffer_names)
            return new

        if isinstance(module, BatchNorm1d):
            return convert(module)
        for m in module.modules():
            for name, value in list(vars(m).items()):
                if isinstance(value, BatchNorm1d):
                    setattr(m, name, convert(value))
                elif isinstance(value, list):
                    value[:] = [convert(v) for v in value]
                elif isinstance(value, tuple):
                    setattr(m, name, tuple(convert(v) for v in value))
        return module
