"""needle: a small, readable deep-learning framework with pluggable array backends.

Importing needle is cheap: no backend is discovered or loaded until a device is needed.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import backend_ndarray, init, ops  # noqa: F401
from .autograd import Tensor, TensorTuple, enable_grad, from_dlpack, no_grad  # noqa: F401
from .backend_ndarray import Device, all_devices, cpu, cpu_numpy, cuda, default_device, device  # noqa: F401
from .ops import *  # noqa: F403 (the course exposes every op at top level)
from .random import manual_seed  # noqa: F401

_LAZY_MODULES = {"nn", "optim", "data", "models", "training", "serialization", "compiled"}


def __getattr__(name: str) -> object:
    """Import the heavier sub-packages on first use, so ``import needle`` stays cheap."""
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in ("save", "load"):
        return getattr(importlib.import_module(".serialization", __name__), name)
    if name in ("compile", "CaptureError"):
        return getattr(importlib.import_module(".compiled", __name__), name)
    raise AttributeError(f"module 'needle' has no attribute {name!r}")
