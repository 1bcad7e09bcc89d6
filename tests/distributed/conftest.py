"""Launching ``mpiexec -n 2`` programs for the distributed tests (skipped without MPI)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
WORKER = HERE / "mpi_worker.py"


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (the ``mpich`` wheel puts it there), else on PATH."""
    beside = Path(sys.executable).parent / "mpiexec"
    if beside.exists():
        return str(beside)
    return shutil.which("mpiexec")


class MPIRun:
    def __init__(self, mpiexec: str) -> None:
        self.mpiexec = mpiexec

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        for var in ("PMI_SIZE", "PMI_RANK", "PMI_FD", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK"):
            env.pop(var, None)
        env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
        return env

    def __call__(
        self, *args: str, n: int = 2, timeout: float = 240, check: bool = True, **env: str
    ) -> tuple[subprocess.CompletedProcess, float]:
        """Run ``mpi_worker.py ARGS`` on ``n`` ranks (n=0: plain python, no launcher)."""
        cmd = [sys.executable, str(WORKER), *args]
        if n:
            cmd = [self.mpiexec, "-n", str(n), *cmd]
        start = time.monotonic()
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=self.env(**env)
        )
        elapsed = time.monotonic() - start
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
                f"\n--- stderr\n{proc.stderr[-4000:]}"
            )
        return proc, elapsed


@pytest.fixture(scope="session")
def mpirun() -> MPIRun:
    if importlib.util.find_spec("mpi4py") is None:
        pytest.skip("needs mpi4py (pip install mpi4py mpich)")
    mpiexec = find_mpiexec()
    if mpiexec is None:
        pytest.skip("needs an mpiexec (pip install mpich, or a system MPI)")
    return MPIRun(mpiexec)
