"""Compile every kernel source with nvcc: ``python -m needle_cuda.compile_check``.

Runs ``nvcc -std=c++17 --ptx -arch=sm_XX`` on each ``.cu`` file of
``needle_cuda/kernels`` and checks that the PTX exports every kernel name the Python side
launches. Exits 1 on a compile error or a missing name, 0 when all pass. Without nvcc it
prints why it skipped and exits 0. Options: ``--arch sm_90`` (default ``sm_80``),
``--nvcc PATH``, ``--keep DIR`` (write the PTX there).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .sources import COMPILE_OPTIONS, KERNEL_DIR, MODULE_KERNELS, cu_files, ptx_entries


def find_nvcc(explicit: str | None = None) -> str | None:
    """nvcc from ``--nvcc``, ``$NVCC``, ``PATH``, ``$CUDA_HOME/bin`` or /usr/local/cuda."""
    if explicit:
        return explicit
    candidates = [os.environ.get("NVCC"), shutil.which("nvcc")]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(str(Path(os.environ[var]) / "bin" / "nvcc"))
    candidates.append("/usr/local/cuda/bin/nvcc")
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return c
    return None


def compile_file(nvcc: str, path: Path, arch: str, out_dir: Path) -> tuple[bool, str, set[str]]:
    """Compile one file to PTX: (ok, compiler output, exported entry names)."""
    ptx = out_dir / (path.stem + ".ptx")
    cmd = [
        nvcc,
        *COMPILE_OPTIONS,
        "--ptx",
        f"-arch={arch}",
        "-I",
        str(KERNEL_DIR),
        "-o",
        str(ptx),
        str(path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or not ptx.is_file():
        return False, f"$ {' '.join(cmd)}\n{log}", set()
    return True, log, ptx_entries(ptx.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m needle_cuda.compile_check", description=__doc__
    )
    parser.add_argument("--arch", default="sm_80")
    parser.add_argument("--nvcc", default=None)
    parser.add_argument("--keep", default=None, help="folder to keep the PTX in")
    args = parser.parse_args(argv)

    nvcc = find_nvcc(args.nvcc)
    if nvcc is None:
        print(
            "compile_check: SKIPPED: nvcc not found (PATH, $NVCC, $CUDA_HOME/bin, /usr/local/cuda)"
        )
        return 0
    files = cu_files()
    if not files:
        print(f"compile_check: no .cu files in {KERNEL_DIR}")
        return 1
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.keep) if args.keep else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in files:
            ok, log, entries = compile_file(nvcc, path, args.arch, out_dir)
            expected = set(MODULE_KERNELS.get(path.stem, ()))
            missing = sorted(expected - entries)
            if not ok:
                failed += 1
                print(f"FAIL {path.name}\n{log}")
            elif missing:
                failed += 1
                print(f"FAIL {path.name}: kernels missing from the PTX: {', '.join(missing)}")
            else:
                extra = f" (warnings:\n{log})" if log else ""
                print(f"ok   {path.name}: {len(entries)} kernels{extra}")
    print(
        f"compile_check: {len(files) - failed}/{len(files)} files ok with {nvcc} -arch={args.arch}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
