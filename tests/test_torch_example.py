"""examples/torch_backend: a third-party backend found through its entry point alone.

Installs the example distribution with pip (non-editable, as a user would), checks
that needle discovers it with no change to the core, and runs the conformance suite on
it with the example's own xfail file. Removed from the environment afterwards unless it
was installed before the test started.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

# The pip/subprocess helpers live with the scaffold tests (tests/ is on pytest's pythonpath).
from test_scaffold import (
    json_output,
    needs_conformance,
    needs_pip,
    pip,
    pip_install,
    run_conformance,
    run_python,
)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "torch_backend"
DIST = "needle-torch-example"

pytestmark = [
    pytest.mark.slow,
    needs_pip,
    pytest.mark.skipif(
        importlib.util.find_spec("torch") is None,
        reason="PyTorch is not installed (pip install torch)",
    ),
]


@pytest.fixture(scope="module")
def torch_backend() -> Iterator[None]:
    """The example installed from its folder; uninstalled after unless it was there."""
    from needle.backends import REGISTRY

    try:
        metadata.distribution(DIST)
        was_installed = True
    except metadata.PackageNotFoundError:
        was_installed = False
    REGISTRY.discover()  # this process keeps the view it had before the install
    pip_install(EXAMPLE)
    try:
        yield
    finally:
        if not was_installed:
            pip("uninstall", "-y", DIST)


DESCRIBE = """
import json, needle, needle.backends as nb
b = nb.list_backends()["torch"]
x = needle.Tensor([[1.0, 2.0], [3.0, 4.0]], device="torch", requires_grad=True)
y = needle.Tensor([[0.5], [2.0]], device="torch")
z = (x @ y).sum()
z.backward()
print(json.dumps({
    "distribution": b.distribution, "source": b.source, "usable": b.status().usable,
    "optional": list(b.info.optional_kernels), "z": z.numpy().tolist(),
    "grad": x.grad.numpy().tolist(), "handle": type(x.cached_data._handle.tensor).__name__,
}))
"""


def test_discovered_through_its_entry_point(torch_backend: None) -> None:
    result = run_python(DESCRIBE)
    assert result.returncode == 0, result.stderr
    report = json_output(result.stdout)
    assert report["distribution"] == DIST
    assert report["source"] == "entry point torch = needle_torch_example.plugin"
    assert report["usable"] is True and report["optional"] == ["batched_matmul"]
    assert report["z"] == 14.0 and report["grad"] == [[0.5, 2.0], [0.5, 2.0]]
    assert report["handle"] == "Tensor"  # the handle really wraps a torch tensor


def test_plugin_module_does_not_import_torch(torch_backend: None) -> None:
    code = (
        "import sys, needle.backends as nb\n"
        "info = nb.list_backends()['torch'].info\n"
        "print('torch' in sys.modules)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "False"


def test_reports_unusable_without_torch(torch_backend: None) -> None:
    # Hide torch from the import system, as on a machine without it.
    code = (
        "import sys, importlib.util, needle.backends as nb\n"
        "real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n == 'torch' else real(n, *a)\n"
        "st = nb.list_backends()['torch'].status()\n"
        "print(st.usable, st.reason)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "False PyTorch not installed"


@needs_conformance
def test_passes_conformance_with_its_xfail_file(torch_backend: None, tmp_path: Path) -> None:
    xfail = EXAMPLE / "conformance-xfail.txt"
    out = run_conformance("torch", f"--needle-xfail={xfail}", cwd=tmp_path)
    summary = out.strip().splitlines()[-1]  # pytest's closing line
    assert re.match(r"^\d+ passed", summary) and "failed" not in summary, summary
