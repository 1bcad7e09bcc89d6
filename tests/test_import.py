"""`import needle` stays cheap: no backend is discovered or imported."""

from __future__ import annotations

import os
import subprocess
import sys

HEAVY = ("needle_numpy", "needle_cpp", "needle_cpp._core", "needle_cuda", "cupy", "torch")


def test_import_loads_no_backend() -> None:
    code = f"import sys, needle; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_needle_nosuch_backend_does_not_fail() -> None:
    env = dict(os.environ, NEEDLE_BACKEND="nosuch")
    out = subprocess.run([sys.executable, "-c", "import needle"], env=env, capture_output=True)
    assert out.returncode == 0, out.stderr


def test_the_cli_imports_no_backend_and_no_test_framework() -> None:
    # `needle --help` loads every command's register function: the backend kit's must stay
    # light (no pytest, no backend), and the core's own never imports the kit itself.
    code = (
        "import sys; from needle import cli; "
        "core_only = 'needle_conformance' not in sys.modules; "
        "cli.build_parser(); "
        f"print(core_only, ','.join(m for m in {HEAVY + ('pytest',)!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True", out.stdout + out.stderr
