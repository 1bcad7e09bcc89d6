"""The GPU kernel tests, run against the real kernel table over a NumPy stand-in for
CuPy (see ``fakecupy.py``): checks the Python glue -- argument checks, launch argument
order/count/types against the nvcc PTX signatures, layout encoding, warp/block choice --
on any machine. The CUDA code itself is exercised only by ``test_kernels_gpu.py``."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import test_kernels_gpu as _gpu
from fakecupy import fake_cuda_kernels, ptx_signatures
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
    with fake_cuda_kernels(_signatures(), LAUNCHES) as kernels:
        yield kernels


def test_zz_every_kernel_was_launched(cuda_kernels):
    """Runs last in this module: every compiled kernel name was launched at least once."""
    if not LAUNCHES:
        pytest.skip("no emulated launches recorded (run the whole module)")
    never = sorted(set(sources.KERNEL_MODULE) - set(LAUNCHES))
    assert not never, f"kernels never launched by the tests: {never}"


assert _gpu  # keep the import (fixtures and helpers live there)
