"""Test setup for needle-cuda.

Makes the core, the NumPy reference backend and this package importable from the source
tree when they are not installed, registers the ``gpu`` marker and provides the
``cuda_kernels`` fixture (skips with "needs a usable CUDA device" where there is none).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PKG_ROOT = HERE.parent  # backends/cuda_backend
REPO = PKG_ROOT.parent.parent

for mod, path in (
    ("needle", REPO / "core"),
    ("needle_numpy", REPO / "backends" / "numpy_backend"),
    ("needle_cuda", PKG_ROOT),
):
    if importlib.util.find_spec(mod) is None and path.is_dir():
        sys.path.insert(0, str(path))

# Helper modules of these tests (fakecupy, test_kernels_gpu) are imported by name, also
# under --import-mode=importlib, which does not put test folders on sys.path.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

GPU_SKIP_REASON = "needs a usable CUDA device"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs a usable CUDA device; skipped with a reason where there is none"
    )


def cuda_status():
    from needle_cuda.plugin import probe

    return probe()


_STATUS = None


def gpu_usable() -> bool:
    global _STATUS
    if _STATUS is None:
        _STATUS = cuda_status()
    return bool(_STATUS.usable)


requires_gpu = pytest.mark.skipif("not gpu_usable()", reason=GPU_SKIP_REASON)


@pytest.fixture(scope="session")
def cuda_kernels():
    """The kernel table of cuda:0, or a skip with the reason."""
    status = cuda_status()
    if not status.usable:
        pytest.skip(f"{GPU_SKIP_REASON} ({status.reason})")
    from needle_cuda.plugin import needle_backend_load

    return needle_backend_load(0)


@pytest.fixture(scope="session")
def ref_kernels():
    """The NumPy reference backend's kernels."""
    from needle_numpy import kernels

    return kernels
