"""Developer sessions: ``nox -l`` lists them, ``nox -s NAME`` runs one.

Every session installs what it needs into its own virtual environment under ``.nox/``
(the ``venv`` backend, so nothing outside PyPI and this repository is needed). Sessions
whose installs are heavy reuse their environment between runs; pip reinstalls the
repository's own distributions each time, so a reused environment still tests the
working tree.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "typecheck", "tests"]

ROOT = Path(__file__).parent
BACKENDS = ["numpy", "cpp", "cuda"]
LINT_PATHS = [
    "core",
    "backends",
    "conformance",
    "tests",
    "benchmarks",
    "examples",
    "tools",
    "noxfile.py",
]
TORCH = "torch==2.13.0"  # a CPU build on the project machines' disk; any other downloads GBs
# The README's quick-start line, used by `demo` when the README cannot be read.
DEMO_FALLBACK = (
    'pip install -e ".[dev]" && pip install ./backends/cpp_backend && needle train mnist-mlp'
)


# --- helpers --------------------------------------------------------------------------
def _data_env() -> dict[str, str]:
    """NEEDLE_DATA for an installed (non-editable) needle: the repository's data/, as CI."""
    return {"NEEDLE_DATA": os.environ.get("NEEDLE_DATA") or str(ROOT / "data")}


def _gpu_problem() -> str | None:
    """Why there is no usable NVIDIA GPU here, or None when there is one."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return "no NVIDIA GPU here (nvidia-smi not found)"
    proc = subprocess.run([smi, "-L"], capture_output=True, text=True)
    if proc.returncode != 0 or "GPU" not in proc.stdout:
        return f"no NVIDIA GPU here (nvidia-smi -L: {(proc.stdout + proc.stderr).strip()!r})"
    return None


def _cupy_extra() -> str:
    """The needle-cuda extra whose CuPy wheel matches the driver's CUDA major version."""
    out = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout
    match = re.search(r"CUDA Version:\s*(\d+)", out)
    return "cuda13" if match and int(match.group(1)) >= 13 else "cuda12"


def _skip_without_gpu(session: nox.Session, backend: str) -> None:
    """Skip (before installing anything) a cuda session on a machine without a GPU."""
    problem = _gpu_problem() if backend == "cuda" else None
    if problem:
        session.skip(f"the cuda backend needs a GPU and CuPy: {problem}")


def _install_backend(session: nox.Session, backend: str) -> None:
    """Install backend ``backend`` (and CuPy for cuda, skipping when no GPU can run it).

    The numpy reference backend ships inside the core (needle-core): nothing to install.
    """
    if backend == "numpy":
        return
    if backend == "cuda":
        session.install(f"backends/cuda_backend[{_cupy_extra()}]")
        probe = "import cupy; assert cupy.cuda.runtime.getDeviceCount() > 0"
        try:
            session.run("python", "-c", probe, silent=True)
        except nox.command.CommandFailed:
            session.skip("CuPy is installed but cannot use the GPU")
    else:
        session.install(f"backends/{backend}_backend")


# --- sessions -------------------------------------------------------------------------
@nox.session(reuse_venv=True)
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """Run the core test suite (pytest tests) with NEEDLE_BACKEND set to one backend."""
    _skip_without_gpu(session, backend)
    session.install(".[test]")
    _install_backend(session, backend)
    session.run("pytest", "tests", *session.posargs, env={"NEEDLE_BACKEND": backend, **_data_env()})


@nox.session(reuse_venv=True)
@nox.parametrize("backend", BACKENDS)
def conformance(session: nox.Session, backend: str) -> None:
    """Run the shared conformance suite against one backend."""
    _skip_without_gpu(session, backend)
    session.install(".", "./conformance")
    _install_backend(session, backend)
    session.run(
        "pytest",
        "--pyargs",
        "needle_conformance",
        f"--needle-backend={backend}",
        *session.posargs,
        env=_data_env(),
    )


@nox.session(reuse_venv=True)
def mutation(session: nox.Session) -> None:
    """Mutation score of the conformance suite: its kernels area against each single-bug
    backend of conformance/meta_tests/broken_backends.py (see docs/conformance.md)."""
    session.install(".", "./conformance")
    session.run("python", "conformance/meta_tests/mutation.py", *session.posargs)


@nox.session(reuse_venv=True)
def bench(session: nox.Session) -> None:
    """Benchmark every backend with NumPy/PyTorch peers; write docs/benchmarks.md."""
    session.install(".[test]", "backends/cpp_backend", "threadpoolctl")
    try:
        session.install(TORCH)
    except nox.command.CommandFailed:
        session.warn(f"{TORCH} could not be installed: the PyTorch peer will be skipped")
    out = ROOT / ".benchmarks" / "nox-bench.json"
    out.parent.mkdir(exist_ok=True)
    # Sized for < 10 minutes on the 2-core project machine, installs included.
    pytest_cmd = [
        "pytest",
        "benchmarks",
        f"--benchmark-json={out.relative_to(ROOT)}",
        "--benchmark-min-rounds=3",
        "--benchmark-max-time=0.5",
        "--benchmark-columns=min,median,rounds",
        "--benchmark-sort=fullname",
        "-q",
        *session.posargs,
    ]
    report_cmd = [
        "python",
        "-m",
        "benchmarks.report",
        str(out.relative_to(ROOT)),
        "-o",
        "docs/benchmarks.md",
    ]
    command = f"nox -s bench  # runs: {shlex.join(pytest_cmd)} && {shlex.join(report_cmd)}"
    # OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (set on some machines for old OpenBLAS builds)
    # slow a current NumPy down: unset both for this run only (see threadpoolctl's report).
    session.run(
        *pytest_cmd, env={"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None, **_data_env()}
    )
    session.run(*report_cmd, "--command", command)


@nox.session(reuse_venv=True)
def distributed(session: nox.Session) -> None:
    """needle.distributed: the 2-process tests (mpiexec -n 2) on numpy and cpp."""
    session.install(".[test]", "backends/cpp_backend")
    session.run(
        "pytest", "tests/distributed", *session.posargs,
        env={"OMP_NUM_THREADS": "1", **_data_env()},
    )  # fmt: skip


@nox.session(reuse_venv=True)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over core, backends, conformance, tests, benchmarks."""
    session.install("ruff")
    failed = []
    for args in (["check"], ["format", "--check"]):
        try:  # run both, so one run reports every problem
            session.run("ruff", *args, *LINT_PATHS, *session.posargs)
        except nox.command.CommandFailed:
            failed.append("ruff " + " ".join(args))
    if failed:
        session.error(f"{' and '.join(failed)} found problems (listed above)")


@nox.session(reuse_venv=True)
def typecheck(session: nox.Session) -> None:
    """mypy on the core package (core/needle)."""
    session.install("mypy", "-e", ".")
    session.run("mypy", "core/needle", *session.posargs)


def _demo_command() -> str:
    """The README's first command (install, then train), or the fallback."""
    readme = ROOT / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    for line in text.splitlines():
        if line.startswith("pip install") and "&& needle " in line:
            return line.strip()
    return DEMO_FALLBACK


@nox.session
def demo(session: nox.Session) -> None:
    """The README's first command in a fresh venv: its pip installs, then its needle command."""
    *installs, run = (part.strip() for part in _demo_command().split("&&"))
    for install in installs:
        session.install(*shlex.split(install)[2:])  # drop "pip install"
    session.run(*shlex.split(run), env=_data_env())


@nox.session(reuse_venv=True)
def cuda_compile(session: nox.Session) -> None:
    """Compile every CUDA kernel to PTX with nvcc (python -m needle_cuda.compile_check)."""
    if shutil.which("nvcc") is None:
        session.skip("nvcc not found on PATH: the CUDA sources cannot be compiled here")
    session.install(".", "backends/cuda_backend")
    session.run("python", "-m", "needle_cuda.compile_check", *session.posargs)


@nox.session
def asan(session: nox.Session) -> None:
    """Build the C++ backend with ASan+UBSan (NEEDLE_CPP_SANITIZE=ON); run its conformance."""
    session.install(".", "./conformance")
    session.install(
        "--config-settings=cmake.define.NEEDLE_CPP_SANITIZE=ON",
        "--force-reinstall",
        "--no-deps",
        "backends/cpp_backend",
    )
    session.install("numpy")
    # The sanitizer runtimes must load before Python; libstdc++ too, or ASan cannot find
    # __cxa_throw and aborts on the first C++ exception (every bad-input test throws one).
    preload = " ".join(
        subprocess.run(
            ["gcc", f"-print-file-name={lib}"], capture_output=True, text=True, check=True
        ).stdout.strip()
        for lib in ("libasan.so", "libubsan.so", "libstdc++.so")
    )
    session.run(
        "pytest",
        "--pyargs",
        "needle_conformance",
        "--needle-backend=cpp",
        *session.posargs,
        env={
            "LD_PRELOAD": preload,
            "ASAN_OPTIONS": "detect_leaks=0",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
            **_data_env(),
        },
    )
