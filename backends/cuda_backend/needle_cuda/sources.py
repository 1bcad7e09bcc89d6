"""The CUDA C++ sources of the kernels and the names they export (pure Python).

Each ``.cu`` file in ``needle_cuda/kernels`` becomes one ``cupy.RawModule``. Its kernels
have ``extern "C"`` names ending in ``_f32``/``_f64`` (see the macros in the files).
:data:`MODULE_KERNELS` lists, per file, every name the Python side looks up; the tests
check it against the PTX that nvcc produces, so a typo is caught without a GPU.
"""

from __future__ import annotations

import re
from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
"""Folder holding the ``.cu`` files and ``common.cuh``."""

COMPILE_OPTIONS: tuple[str, ...] = ("-std=c++17",)
"""Options given to NVRTC (and, with an architecture flag, to nvcc in the compile check)."""

DTYPE_SUFFIX = {"float32": "f32", "float64": "f64"}

BINARY_OPS = ("add", "sub", "mul", "div", "power", "maximum", "eq", "ne", "lt", "le", "gt", "ge")
UNARY_OPS = ("neg", "abs", "log", "exp", "tanh", "sqrt", "sin", "cos")
ROW_OPS = ("reduce_sum", "reduce_max", "reduce_argmax", "logsumexp_last", "softmax_last")


def _names(stems: list[str]) -> tuple[str, ...]:
    return tuple(f"{s}_{suf}" for s in stems for suf in DTYPE_SUFFIX.values())


MODULE_KERNELS: dict[str, tuple[str, ...]] = {
    "elementwise": _names(
        [f"ewise_{op}" for op in BINARY_OPS]
        + [f"scalar_{op}" for op in BINARY_OPS]
        + [f"ewise_{op}" for op in UNARY_OPS]
        + ["ewise_where"]
    ),
    "layout": _names(["fill", "compact", "ewise_setitem", "scalar_setitem"])
    + tuple(f"astype_{a}_{b}" for a in ("f32", "f64") for b in ("f32", "f64")),
    "reduce": _names([f"{op}_{mode}" for op in ROW_OPS for mode in ("warp", "block")]),
}
"""Every kernel name the Python side launches, by module (file stem)."""

KERNEL_MODULE: dict[str, str] = {k: m for m, ks in MODULE_KERNELS.items() for k in ks}
"""Which module defines a kernel name."""

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.MULTILINE)


def cu_files() -> list[Path]:
    """The ``.cu`` files, sorted."""
    return sorted(KERNEL_DIR.glob("*.cu"))


def module_source(stem: str) -> str:
    """The self-contained source of module ``stem``: local ``#include "x"`` lines are
    replaced by the file's text (once each), so NVRTC needs no include path and CuPy's
    on-disk cache key (a hash of the code) changes whenever any part changes."""
    seen: set[str] = set()

    def expand(text: str) -> str:
        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in seen:
                return ""
            path = KERNEL_DIR / name
            if not path.is_file():
                return m.group(0)  # a system header: leave it to the compiler
            seen.add(name)
            return expand(path.read_text())

        return _INCLUDE.sub(repl, text)

    path = KERNEL_DIR / f"{stem}.cu"
    if not path.is_file():
        raise FileNotFoundError(f"needle-cuda: kernel source {path} is missing")
    return expand(path.read_text())


def ptx_entries(ptx: str) -> set[str]:
    """The kernel (entry) names declared in a PTX text."""
    return set(re.findall(r"\.entry\s+([A-Za-z_][A-Za-z0-9_$]*)", ptx))
