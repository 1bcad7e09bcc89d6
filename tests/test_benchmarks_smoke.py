"""Every benchmark runs once, at tiny sizes, as a correctness check.

The benchmark functions compare their results with NumPy, so a broken kernel, op or
benchmark fails here; no timing is asserted (timing goals live in the benchmarks' report).
The suites run in a subprocess because ``benchmarks/`` is its own pytest root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmarks_run_as_smoke_checks() -> None:
    env = dict(os.environ)
    # The built-in backends only: a third-party or generated backend in the same venv is
    # benchmarked by `pytest benchmarks`, but is not this repository's to smoke-test.
    env.setdefault("NEEDLE_BENCH_BACKENDS", "numpy,cpp,cuda")
    env.setdefault("NEEDLE_BENCH_THREADS", "2")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks",
        "--bench-quick",
        "--benchmark-disable",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
    ]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    tail = (proc.stdout + proc.stderr)[-4000:]
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}"
    assert " passed" in proc.stdout, tail
