"""The GPU kernel tests, run against the real kernel table over a NumPy stand-in for
CuPy (see ``fakecupy.py``): checks the Python glue -- argument checks, launch argument
order/count/types against the nvcc PTX signatures, layout encoding, warp/block choice --
on any machine. The CUDA code itself is exercised only by ``test_kernels_gpu.py``."""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

import pytest
import test_kernels_gpu as _gpu
from fakecupy import make_fake_cupy, ptx_signatures
from needle_cuda import compile_check, sources
from test_kernels_gpu import *  # noqa: F403 -- re-run the same tests here

pytestmark: list = []  # not GPU tests
del test_load_is_cached_per_index  # noqa: F821 -- needs real devices

LAUNCHES: list[str] = []


def _signatures():
    nvcc = compile_check.find_nvcc()
    if nvcc is None:
        return None
    sigs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for path in sources.cu_files():
            ok, log, _ = compile_check.compile_file(nvcc, path, "sm_80", Path(tmp))
            assert ok, log
            sigs.update(ptx_signatures((Path(tmp) / f"{path.stem}.ptx").read_text()))
    return sigs


@pytest.fixture(scope="module")
def cuda_kernels():
    saved = {k: sys.modules.get(k) for k in ("cupy", "needle_cuda.table")}
    sys.modules["cupy"] = make_fake_cupy(_signatures(), LAUNCHES)
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


def test_zz_every_kernel_was_launched(cuda_kernels):
    """Runs last in this module: every compiled kernel name was launched at least once."""
    if not LAUNCHES:
        pytest.skip("no emulated launches recorded (run the whole module)")
    never = sorted(set(sources.KERNEL_MODULE) - set(LAUNCHES))
    assert not never, f"kernels never launched by the tests: {never}"


assert _gpu  # keep the import (fixtures and helpers live there)
