"""Every environment variable needle reads, in one table.

``docs/environment.md`` is generated from :data:`VARIABLES` by
``python tools/gen_env_doc.py``; ``tests/test_env.py`` checks that the page is current and
that every ``NEEDLE_*`` name read anywhere in the repository's code (core, backends,
conformance, benchmarks) has a record here. This module is data only: the code that reads
a variable stays where it is used.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VARIABLES", "EnvVar", "render_markdown", "variable"]


@dataclass(frozen=True)
class EnvVar:
    """One variable: its name, its default, what it means and who reads it (and when).

    ``kind`` is ``"runtime"`` (read from the environment of a running process) or
    ``"build"`` (a CMake option of the C++ backend, given at install time as
    ``--config-settings=cmake.define.NAME=ON``; not an environment variable).
    """

    name: str
    default: str
    meaning: str
    read_by: str
    kind: str = "runtime"


VARIABLES: tuple[EnvVar, ...] = (
    # --- needle itself ---------------------------------------------------------------
    EnvVar(
        "NEEDLE_BACKEND",
        "unset: `cpp` when usable, else `numpy`",
        "Name of the default backend (`numpy`, `cpp`, `cuda`, or any installed "
        "third-party name). A name that is not installed or not usable is an error that "
        "lists every installed backend and why each unusable one is unusable. Also the "
        "backend `needle conformance` and the conformance suite test when none is named.",
        "needle's device rules, when a default device is first needed (never at "
        "import); `needle_conformance`, when no backend is named",
    ),
    EnvVar(
        "NEEDLE_STRICT_PLUGINS",
        "unset (`0`)",
        "`1`, `true` or `yes`: every plugin is imported at discovery, and a plugin that "
        "fails to import, fails validation or claims a taken name raises "
        "`needle.backends.PluginError` instead of being reported and skipped. `0`, "
        "`false`, `no` or unset: off; any other value is a `ValueError`.",
        "the plugin host (`needle.backends`), at discovery and registration",
    ),
    EnvVar(
        "NEEDLE_DEBUG",
        "unset (`0`)",
        "`1`, `true` or `yes`: `needle train` prints the Python traceback of an expected "
        "error (a bad option, path or input file) besides its one-line message; the same "
        "as `--debug`.",
        "`needle train`, when it reports an error",
    ),
    EnvVar(
        "NEEDLE_FALLBACK",
        "unset (`0`)",
        "`1`: a backend that lacks required kernels is accepted; the missing kernels run "
        "through the NumPy reference backend (copying data to the host and back), with "
        "one `RuntimeWarning` per kernel. `needle backends` lists the kernels that fall "
        "back.",
        "the plugin host, when a backend's kernels are loaded",
    ),
    EnvVar(
        "NEEDLE_DATA",
        "unset: the repository's `data/` folder, for an editable or in-tree install",
        "Folder holding the data sets (`mnist/`, `ptb/`, `cifar-10-batches-py/`). Looked "
        "up after an explicit path (`root=`, `needle train --data-dir`) and before the "
        "repository's `data/` folder, which is found beside the package "
        "(`<repo>/core/needle` → `<repo>/data`) and never by searching the working "
        "directory. A regular (non-editable) install has no repository beside it: set "
        "this variable or pass a path.",
        "`needle.data` data sets, when a data set is opened",
    ),
    EnvVar(
        "NEEDLE_DIST_TIMEOUT",
        "`300`",
        "Seconds a collective operation of `needle.distributed` waits before it fails.",
        "`needle.distributed.init`, when no `timeout=` is given",
    ),
    EnvVar(
        "PMI_SIZE, PMI_RANK, OMPI_COMM_WORLD_SIZE, PMIX_RANK, MPI_LOCALNRANKS",
        "unset",
        "Set by MPI launchers (`mpiexec`, `mpirun`, `srun`); any of them present means "
        "this process was started by one, so `needle.distributed` uses MPI.",
        "`needle.distributed.launched_by_mpi`",
    ),
    # --- the C++ backend ---------------------------------------------------------------
    EnvVar(
        "OMP_NUM_THREADS",
        "unset: one thread per core",
        "Number of OpenMP threads of the C++ backend (also settable with "
        "`needle_cpp.set_num_threads`). The benchmarks use it as their thread count when "
        "`NEEDLE_BENCH_THREADS` is unset.",
        "OpenMP, when `needle_cpp` first runs a kernel; `benchmarks/_common.py`",
    ),
    EnvVar(
        "OMP_WAIT_POLICY, GOMP_SPINCOUNT",
        "unset: `needle_cpp` sets `GOMP_SPINCOUNT=30000`",
        "How long idle OpenMP threads spin before sleeping. Unless either is set, "
        "importing `needle_cpp` sets `GOMP_SPINCOUNT` to 30000 (a few hundred µs): long "
        "enough that kernels between Python work do not wake sleeping threads, short enough "
        "that a busy core elsewhere does not stall every kernel (see `needle_cpp.SPIN_COUNT`"
        " and `python -m benchmarks.omp_wake`); set either to override.",
        "`needle_cpp` at import; libgomp when it loads",
    ),
    EnvVar(
        "NEEDLE_CPP_SIMD",
        "unset: the best level the CPU supports",
        "`avx2` or `scalar`: lower the C++ backend's SIMD level (for tests and "
        "comparisons); it never raises it. `needle_cpp.set_simd_level` does the same at "
        "run time.",
        "the C++ backend's dispatcher, when the compiled module loads",
    ),
    EnvVar(
        "NEEDLE_CPP_CACHE_MB",
        "`1024`",
        "Megabytes of freed buffers the C++ backend keeps for reuse (size classes at most "
        "1/8 apart; a fresh large buffer costs page faults a reused one does not). `0` "
        "turns the cache off. `needle_cpp._core.set_cache_limit_mb`, `empty_cache` and "
        "`cache_info` control and inspect it at run time.",
        "the C++ backend, when the compiled module loads",
    ),
    EnvVar(
        "NEEDLE_CPP_CONV_DIRECT_PIXELS",
        "unset: no limit (always direct)",
        "Output pixels per image (h_out * w_out) at or below which the C++ `conv2d_nhwc` "
        "packs patches straight from the image instead of building an im2col buffer "
        "(same result, bit for bit; faster at every size measured). `0` always uses im2col.",
        "the C++ backend, when the compiled module loads",
    ),
    EnvVar(
        "NEEDLE_CPP_NATIVE",
        "`OFF`",
        "`ON`: compile every kernel with `-march=native` (fast here, not portable).",
        "CMake, when the C++ backend is built",
        kind="build",
    ),
    EnvVar(
        "NEEDLE_CPP_SANITIZE",
        "`OFF`",
        "`ON`: build with AddressSanitizer and UBSan (`nox -s asan`).",
        "CMake, when the C++ backend is built",
        kind="build",
    ),
    EnvVar(
        "NEEDLE_CPP_LIBMVEC",
        "`ON`",
        "`OFF`: do not vectorise exp/log/sin/cos/tanh with glibc's libmvec.",
        "CMake, when the C++ backend is built",
        kind="build",
    ),
    # --- the CUDA backend ----------------------------------------------------------------
    EnvVar(
        "NVCC, CUDA_HOME, CUDA_PATH",
        "unset: `nvcc` on `PATH`, then `/usr/local/cuda/bin/nvcc`",
        "Where `python -m needle_cuda.compile_check` (`nox -s cuda_compile`) finds "
        "`nvcc`: `$NVCC`, `PATH`, `$CUDA_HOME/bin`, `$CUDA_PATH/bin`. Kernels used at run "
        "time are compiled by NVRTC through CuPy and need none of these.",
        "`needle_cuda.compile_check`",
    ),
    # --- benchmarks ----------------------------------------------------------------------
    EnvVar(
        "NEEDLE_BENCH_THREADS",
        "unset: `OMP_NUM_THREADS`, else every core",
        "Threads given to every implementation in a benchmark run (NumPy's BLAS, the C++ "
        "backend's OpenMP, PyTorch); the benchmarks set `OMP_NUM_THREADS`, "
        "`OPENBLAS_NUM_THREADS` and `MKL_NUM_THREADS` to it.",
        "`benchmarks/_common.py`, at import",
    ),
    EnvVar(
        "NEEDLE_BENCH_BACKENDS",
        "unset: every installed backend",
        "Comma-separated backend names the benchmarks measure (e.g. `numpy,cpp`).",
        "`benchmarks/_common.py`, `benchmarks/bench_gpu.py`",
    ),
    EnvVar(
        "NEEDLE_BENCH_QUICK",
        "unset (`0`)",
        "`1` (or `--bench-quick`): shrink every size and run one round, a smoke run.",
        "`benchmarks/_common.py`",
    ),
    EnvVar(
        "NEEDLE_BENCH_ROUNDS",
        "unset: each benchmark's own count",
        "Rounds of every `benchmark.pedantic` measurement (ignored in quick mode).",
        "`benchmarks/_common.py`",
    ),
    EnvVar(
        "OPENBLAS_NUM_THREADS, MKL_NUM_THREADS",
        "unset",
        "BLAS threads; the benchmarks set both to their thread count (and record "
        "`OPENBLAS_NUM_THREADS` in the run's machine info).",
        "`benchmarks/_common.py`, `benchmarks/conftest.py`",
    ),
    EnvVar(
        "OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE",
        "unset",
        "Set on some machines for old OpenBLAS builds; they slow a current NumPy down, so "
        "`nox -s bench` unsets both for its run, and the benchmarks record the core type.",
        "`noxfile.py` (bench session), `benchmarks/conftest.py`",
    ),
)


def variable(name: str) -> EnvVar:
    """The record of ``name`` (one of a record's comma-separated names also matches).

    Raises:
        KeyError: needle reads no variable of that name.
    """
    for var in VARIABLES:
        if name in (n.strip() for n in var.name.split(",")):
            return var
    raise KeyError(f"needle reads no environment variable {name!r}")


def _row(var: EnvVar) -> str:
    names = ", ".join(f"`{n.strip()}`" for n in var.name.split(","))
    cells = (names, var.default, var.read_by, var.meaning)
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render_markdown() -> str:
    """The text of ``docs/environment.md``."""
    head = "| variable | default | read by | meaning |\n|---|---|---|---|"
    runtime = [_row(v) for v in VARIABLES if v.kind == "runtime"]
    build = [_row(v) for v in VARIABLES if v.kind == "build"]
    return "\n".join(
        [
            "# Environment variables",
            "",
            "<!-- Generated from needle/_env.py by `python tools/gen_env_doc.py`; "
            "edit the table there. -->",
            "",
            "Every variable needle, its backends, the conformance suite and the benchmarks read.",
            "",
            head,
            *runtime,
            "",
            "## Build options of the C++ backend",
            "",
            "CMake options, not environment variables: give them when the backend is "
            "built, e.g. `pip install --config-settings=cmake.define.NEEDLE_CPP_NATIVE=ON "
            "./backends/cpp_backend`.",
            "",
            head,
            *build,
            "",
            "Tests and CI point `NEEDLE_DATA` at `../shared/data` when that folder exists "
            "(see `.ci/run`); the nox sessions point it at the repository's `data/`.",
            "",
        ]
    )
