"""Run-time instruction-set choice, thread controls and concurrent callers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from cpp_test_utils import LEVELS, get, put, rand


def test_levels(core):
    best = core.best_simd_level()
    assert best in LEVELS
    assert core.simd_level() == best
    with pytest.raises(ValueError, match="set_simd_level"):
        core.set_simd_level("avx1024")


def run_python(code: str, cwd, **env) -> subprocess.CompletedProcess:
    # cwd away from the source tree, whose needle_cpp/ has no compiled module
    env = dict(os.environ, **env)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True
    )


@pytest.mark.parametrize("level", ["scalar", "avx2"])
def test_env_var_lowers_level(level, tmp_path):
    code = "from needle_cpp import _core; print(_core.simd_level())"
    out = run_python(code, tmp_path, NEEDLE_CPP_SIMD=level)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == level


def test_omp_num_threads_is_respected(tmp_path):
    code = "from needle_cpp import _core; print(_core.get_num_threads())"
    out = run_python(code, tmp_path, OMP_NUM_THREADS="1")
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_concurrent_callers_do_not_share_scratch(core):
    # Kernels release the GIL; gemm scratch buffers are per thread.
    a, b = rand((200, 300), "float32"), rand((300, 150), "float32")
    want = a @ b
    errors = []

    def work():
        out = core.alloc(200 * 150, "float32")
        for _ in range(10):
            core.matmul(put(a), put(b), out, 200, 300, 150)
            if not np.allclose(get(out, (200, 150)), want, rtol=1e-4, atol=1e-3):
                errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
