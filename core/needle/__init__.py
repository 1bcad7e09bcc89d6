"""needle: a small, readable deep-learning framework with pluggable array backends.

Importing needle is cheap: no backend is discovered or loaded until a device is needed.
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import backend_ndarray, init, ops  # noqa: E402
from .autograd import Tensor, TensorTuple, enable_grad, no_grad  # noqa: E402
from .backends import Device, all_devices, cpu, cpu_numpy, cuda, default_device, device  # noqa: E402
from .ops import *  # noqa: E402,F403 (the course exposes every op at top level)
from .random import manual_seed  # noqa: E402
