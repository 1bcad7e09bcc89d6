"""Hook implementations that register the ``torch`` backend with needle.

This module is imported whenever needle lists backends, so it must not import torch:
the status hook only looks for it, and the kernels import it when a device is used.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from needle.backends import BackendInfo, BackendStatus, hookimpl

from . import __version__


@hookimpl
def needle_backend_info() -> BackendInfo:
    """Describe the backend (no torch import)."""
    return BackendInfo(
        name="torch",
        version=__version__,
        contract_version=(1, 0),
        dtypes=("float32", "float64"),
        optional_kernels=("batched_matmul",),
        description="PyTorch CPU tensors (example out-of-tree backend)",
    )


@hookimpl
def needle_backend_status() -> BackendStatus:
    """Usable wherever PyTorch can be imported."""
    if importlib.util.find_spec("torch") is None:
        return BackendStatus(usable=False, reason="PyTorch not installed", device_count=0)
    return BackendStatus(usable=True, device_count=1)


@hookimpl
def needle_backend_load(index: int) -> ModuleType:
    """Import torch and return the kernel module (one CPU device, index 0)."""
    from . import kernels

    return kernels
