"""The CUDA backend's DLPack tests (``test_dlpack_gpu.py``) over the NumPy stand-in for
CuPy (``fakecupy.py``, whose arrays report DLPack device ``(2, 0)``): checks the glue --
views and strides handed to CuPy, the copy/refuse decisions, lifetimes -- on any machine.
What a real CuPy adds (streams, device memory) runs only on a GPU."""

from __future__ import annotations

import pytest
import test_dlpack_gpu as _gpu
from fakecupy import fake_cuda_kernels
from test_dlpack_gpu import *  # noqa: F403 -- re-run the same tests here

pytestmark: list = []  # not GPU tests


@pytest.fixture(scope="module")
def cuda_kernels():
    with fake_cuda_kernels(None, []) as kernels:
        yield kernels


def test_plugin_declares_the_dlpack_kernels():
    from needle_cuda.plugin import OPTIONAL, needle_backend_info

    assert {"dlpack_export", "dlpack_import"} <= set(OPTIONAL)
    assert needle_backend_info().contract_version == (1, 7)


assert _gpu  # keep the import (the tests live there)
