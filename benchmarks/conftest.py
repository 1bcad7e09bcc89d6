"""pytest configuration of the benchmark suites: options, parametrization, machine info.

* ``--bench-quick`` shrinks every size (with ``--benchmark-disable`` this is the smoke run
  of ``tests/test_benchmarks_smoke.py``).
* A benchmark that takes the ``impl`` fixture is parametrized over the implementations its
  ``impls`` marker names (see ``_common.impls_for``); ones that cannot run here are
  skipped with the reason.
* The saved JSON's ``machine_info`` gains a ``needle_bench`` entry: CPU, cores, threads,
  library and backend versions, BLAS, and the command line, which the report prints.
"""

from __future__ import annotations

import os
import sys

# OpenBLAS's idle worker threads (NumPy, and the needle-numpy backend) keep polling for
# work for a while after their last call: the needle-cpp 512x512 matmul backward timed
# right after needle-numpy's took 4.48 ms instead of 3.28 ms (`NEEDLE_BENCH_BACKENDS=numpy,cpp
# pytest benchmarks/bench_ops.py -k "bench_backward and matmul"`), even after the pause
# below. A short timeout (2^4 cycles) puts them to sleep at once; needle-numpy's own times
# did not change. It must be set before NumPy loads OpenBLAS: the machine info records
# whether it was.
OPENBLAS_TIMEOUT_SET = "numpy" not in sys.modules
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import platform  # noqa: E402
import shlex  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from . import _common  # noqa: E402
from ._common import THREADS, Impl  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-quick",
        action="store_true",
        default=False,
        help="shrink every size so the suites run in seconds (a correctness smoke check)",
    )


_LOAD_AT_START: list[float] = []


def _loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def pytest_configure(config: pytest.Config) -> None:
    _LOAD_AT_START[:] = _loadavg()
    if config.getoption("--bench-quick"):
        os.environ["NEEDLE_BENCH_QUICK"] = "1"
    _common.apply_thread_limits()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "impl" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("impls")
    kinds = tuple(marker.args) if marker else ("needle",)
    params = [
        pytest.param(
            impl, id=impl.name, marks=[pytest.mark.skip(reason=impl.skip)] if impl.skip else []
        )
        for impl in _common.impls_for(kinds)
    ]
    metafunc.parametrize("impl", params)


QUIET_SECONDS = 0.3
"""Pause before a benchmark whose implementation differs from the previous one's.

Thread pools spin for a while after their last parallel call: OpenBLAS's (NumPy, and the
needle-numpy backend) for a fraction of a second, libgomp's (needle-cpp, PyTorch) for
``GOMP_SPINCOUNT`` rounds. On 2 cores, the next implementation's threads compete with
those spinners for the first part of its timing: without the pause, the needle-cpp MLP
step timed right after needle-numpy's took 2 to 4 times as long (``pytest
benchmarks/bench_models.py -k "bench_train_step and (numpy-MLP] or cpp-MLP])"``). The
pause lets them go to sleep, so each implementation is measured on a quiet machine."""

_previous_impl: list[str] = []


@pytest.fixture(autouse=True)
def _quiet_between_implementations(request: pytest.FixtureRequest) -> None:
    """Wait :data:`QUIET_SECONDS` when the previous benchmark measured another
    implementation (``impl`` is parametrized directly, so this reads its value)."""
    callspec = getattr(request.node, "callspec", None)
    chosen = callspec.params.get("impl") if callspec is not None else None
    if not isinstance(chosen, Impl):
        return
    if _previous_impl and _previous_impl[0] != chosen.name and not _common.quick():
        time.sleep(QUIET_SECONDS)
    _previous_impl[:] = [chosen.name]


@pytest.fixture
def impl(request: pytest.FixtureRequest) -> Impl:
    """The implementation under test (parametrized by ``pytest_generate_tests``)."""
    return request.param


# --- what the report prints about the machine -------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _backends() -> dict[str, Any]:
    from needle.backends import list_backends, plugin_failures

    out: dict[str, Any] = {}
    for name, b in list_backends().items():
        st = b.status()
        out[name] = {
            "version": b.info.version,
            "distribution": b.distribution,
            "usable": st.usable,
            "reason": st.reason,
            "optional_kernels": list(b.info.optional_kernels),
        }
    for f in plugin_failures():
        out.setdefault(f.name, {"version": "", "usable": False, "reason": f.reason})
    return out


def _blas() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("user_api", "internal_api", "prefix", "version", "num_threads", "architecture")
    return [{k: p.get(k) for k in keys} for p in threadpool_info()]


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "threads": THREADS,
        "thread_env": {
            k: os.environ.get(k, "") for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
        },
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        # whether OPENBLAS_THREAD_TIMEOUT took effect (set before NumPy was imported)
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "")
        if OPENBLAS_TIMEOUT_SET
        else "not applied: NumPy was imported before benchmarks/conftest.py",
        "quick": _common.quick(),
        # 1/5/15-minute load averages: other work on the machine distorts 2-thread timings.
        "loadavg_start": _LOAD_AT_START,
        "loadavg_end": _loadavg(),
        "command": "pytest " + shlex.join(sys.argv[1:]),
        "versions": {
            "python": platform.python_version(),
            "numpy": _version("numpy"),
            "needle": _version("needle"),
            "pytest-benchmark": _version("pytest-benchmark"),
        },
        "backends": _backends(),
        "blas": _blas(),
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["versions"]["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    machine_info["needle_bench"] = info
