"""Constant and random tensors. Random draws come from NumPy's global generator.

The draws are the course's: ``rand`` is ``np.random.rand(*shape) * (high - low) + low``,
``randn`` is ``np.random.randn(*shape) * std + mean`` and ``randb`` is
``np.random.rand(*shape) <= p`` (see :mod:`needle.random`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import random as _random
from ..autograd import Tensor
from ..backend_ndarray import Device, default_device
from ..backend_ndarray import device as _device


def _dev(device: Device | str | None) -> Device:
    return default_device() if device is None else _device(device)


def _from_numpy(x: np.ndarray, device: Any, dtype: str, requires_grad: bool) -> Tensor:
    return Tensor(x, device=_dev(device), dtype=dtype, requires_grad=requires_grad)


def rand(
    *shape: int,
    low: float = 0.0,
    high: float = 1.0,
    device: Any = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """Uniform samples in [low, high)."""
    x = _random.rand(*shape) * (high - low) + low
    return _from_numpy(x, device, dtype, requires_grad)


def randn(
    *shape: int,
    mean: float = 0.0,
    std: float = 1.0,
    device: Any = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """Normal samples with the given mean and standard deviation."""
    x = _random.randn(*shape) * std + mean
    return _from_numpy(x, device, dtype, requires_grad)


def randb(
    *shape: int,
    p: float = 0.5,
    device: Any = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """Bernoulli samples: 1 with probability ``p``, else 0 (drawn on the device where its
    backend can make NumPy's draw there: ``Device.randb``)."""
    return Tensor.make_const(
        _dev(device).randb(*shape, p=p, dtype=dtype), requires_grad=requires_grad
    )


def constant(
    *shape: int,
    c: float = 1.0,
    device: Any = None,
    dtype: str = "float32",
    requires_grad: bool = False,
) -> Tensor:
    """A tensor filled with ``c``."""
    from ..backend_ndarray import full

    dev = _dev(device)
    return Tensor(full(shape, c, dtype=dtype, device=dev), requires_grad=requires_grad)


def ones(
    *shape: int, device: Any = None, dtype: str = "float32", requires_grad: bool = False
) -> Tensor:
    return constant(*shape, c=1.0, device=device, dtype=dtype, requires_grad=requires_grad)


def zeros(
    *shape: int, device: Any = None, dtype: str = "float32", requires_grad: bool = False
) -> Tensor:
    return constant(*shape, c=0.0, device=device, dtype=dtype, requires_grad=requires_grad)


def one_hot(
    n: int, i: Any, device: Any = None, dtype: str = "float32", requires_grad: bool = False
) -> Tensor:
    """Rows of the n-by-n identity picked by integer labels ``i``."""
    return Tensor(_dev(device).one_hot(n, i, dtype=dtype), requires_grad=requires_grad)


def zeros_like(a: Tensor, *, device: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(*a.shape, dtype=a.dtype, device=device or a.device, requires_grad=requires_grad)


def ones_like(a: Tensor, *, device: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(*a.shape, dtype=a.dtype, device=device or a.device, requires_grad=requires_grad)
