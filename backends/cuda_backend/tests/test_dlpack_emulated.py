"""The CUDA backend's DLPack tests (``test_dlpack_gpu.py``) over the NumPy stand-in for
CuPy (``fakecupy.py``, whose arrays report DLPack device ``(2, 0)``): checks the glue --
views and strides handed to CuPy, the copy/refuse decisions, lifetimes -- on any machine.
What a real CuPy adds (streams, device memory) runs only on a GPU."""

from __future__ import annotations

import importlib
import sys

import pytest
import test_dlpack_gpu as _gpu
from fakecupy import make_fake_cupy
from test_dlpack_gpu import *  # noqa: F403 -- re-run the same tests here

pytestmark: list = []  # not GPU tests


@pytest.fixture(scope="module")
def cuda_kernels():
    saved = {k: sys.modules.get(k) for k in ("cupy", "needle_cuda.table")}
    sys.modules["cupy"] = make_fake_cupy(None, [])
    sys.modules.pop("needle_cuda.table", None)
    try:
        table = importlib.import_module("needle_cuda.table")
        yield table.CudaKernels(0)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def test_plugin_declares_the_dlpack_kernels():
    from needle_cuda.plugin import OPTIONAL, needle_backend_info

    assert {"dlpack_export", "dlpack_import"} <= set(OPTIONAL)
    assert needle_backend_info().contract_version == (1, 6)


assert _gpu  # keep the import (the tests live there)
