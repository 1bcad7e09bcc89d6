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
