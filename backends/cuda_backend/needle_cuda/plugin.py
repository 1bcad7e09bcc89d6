"""Hook implementations that register the CUDA backend with needle.

This module is light: it never imports CuPy at import time. ``needle_backend_status``
imports CuPy to count devices (and reports, never raises, when it cannot);
``needle_backend_load`` imports :mod:`needle_cuda.table`, the CuPy kernel table.
"""

from __future__ import annotations

import threading
from typing import Any

from needle.backends import BackendInfo, BackendStatus, hookimpl

from . import __version__

OPTIONAL = (
    "batched_matmul",
    "logsumexp_last",
    "softmax_last",
    "conv2d_nhwc",
    "ewise_where",
    "reduce_argmax",
    "synchronize",
    "dlpack_export",
    "dlpack_import",
)
"""Optional kernels of the contract that the CUDA backend provides."""

_status_lock = threading.Lock()


@hookimpl
def needle_backend_info() -> BackendInfo:
    """Describe the CUDA backend (cheap: imports nothing)."""
    return BackendInfo(
        name="cuda",
        version=__version__,
        contract_version=(1, 7),
        dtypes=("float32", "float64"),
        optional_kernels=OPTIONAL,
        description="CUDA backend (CuPy + NVRTC kernels, cuBLAS matmul)",
    )


def probe() -> BackendStatus:
    """Import CuPy and count CUDA devices; report instead of raising."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cupy
    except ImportError:
        return BackendStatus(usable=False, reason="CuPy not installed", device_count=0)
    except Exception as exc:  # a broken CuPy install must not break needle
        return BackendStatus(
            usable=False,
            reason=f"CuPy failed to import ({type(exc).__name__}: {exc})",
            device_count=0,
        )
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # CUDARuntimeError: no driver, driver too old, ...
        return BackendStatus(
            usable=False, reason=f"no CUDA device ({type(exc).__name__}: {exc})", device_count=0
        )
    if count <= 0:
        return BackendStatus(usable=False, reason="no CUDA device", device_count=0)
    return BackendStatus(usable=True, reason="", device_count=count)


@hookimpl
def needle_backend_status() -> BackendStatus:
    """Whether CuPy is installed and sees at least one CUDA device."""
    with _status_lock:
        return probe()


@hookimpl
def needle_backend_load(index: int) -> Any:
    """The kernel table of CUDA device ``index`` (one cached object per index)."""
    import operator

    try:
        index = operator.index(index)
    except TypeError:
        raise TypeError(f"cuda backend: device index must be an integer, got {index!r}") from None
    status = probe()
    if not status.usable:
        raise RuntimeError(f"cuda backend is not usable here: {status.reason}")
    if not 0 <= index < status.device_count:
        raise IndexError(
            f"cuda backend: no device cuda:{index}; "
            f"{status.device_count} device(s) visible (cuda:0..cuda:{status.device_count - 1})"
        )
    from .table import kernels_for

    return kernels_for(index)
