"""Xavier (Glorot) and Kaiming (He) initialisers, with the course's signatures."""

from __future__ import annotations

import math
from typing import Any

from ..autograd import Tensor
from .basic import rand, randn


def xavier_uniform(fan_in: int, fan_out: int, gain: float = 1.0, **kwargs: Any) -> Tensor:
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rand(fan_in, fan_out, low=-a, high=a, **kwargs)


def xavier_normal(fan_in: int, fan_out: int, gain: float = 1.0, **kwargs: Any) -> Tensor:
    """N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return randn(fan_in, fan_out, mean=0.0, std=std, **kwargs)


def kaiming_uniform(
    fan_in: int,
    fan_out: int,
    nonlinearity: str = "relu",
    shape: tuple[int, ...] | None = None,
    **kwargs: Any,
) -> Tensor:
    """U(-b, b) with b = sqrt(2) * sqrt(3 / fan_in); ``shape`` overrides (fan_in, fan_out)."""
    if nonlinearity != "relu":
        raise ValueError(f"kaiming_uniform: only 'relu' is supported, got {nonlinearity!r}")
    bound = math.sqrt(2.0) * math.sqrt(3.0 / fan_in)
    return rand(*(shape or (fan_in, fan_out)), low=-bound, high=bound, **kwargs)


def kaiming_normal(
    fan_in: int,
    fan_out: int,
    nonlinearity: str = "relu",
    shape: tuple[int, ...] | None = None,
    **kwargs: Any,
) -> Tensor:
    """N(0, std^2) with std = sqrt(2) / sqrt(fan_in)."""
    if nonlinearity != "relu":
        raise ValueError(f"kaiming_normal: only 'relu' is supported, got {nonlinearity!r}")
    std = math.sqrt(2.0) / math.sqrt(fan_in)
    return randn(*(shape or (fan_in, fan_out)), mean=0.0, std=std, **kwargs)
