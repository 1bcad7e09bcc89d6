"""Meta-tests: the suite must catch deliberately broken backends and name the kernel.

Each broken backend (see ``broken_backends.py``) is the NumPy backend with one kernel
wrong. The kernels area runs against it in a subprocess; it must fail, every failure
must be in a test of the guilty kernel, and the failure text must name that kernel.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import needle_conformance
import pytest

HERE = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
PLUGIN = ["-p", "broken_backends"]

pytestmark = pytest.mark.slow

CASES = {
    "broken_add": "ewise_add",
    "broken_compact": "compact",
    "broken_reduce_max": "reduce_max",
    "broken_matmul": "matmul",
}


@pytest.fixture(scope="module")
def kernel_runs() -> dict[str, tuple[int, needle_conformance.Table]]:
    """The kernels area against every broken backend, run side by side (subprocesses)."""

    def one(backend: str) -> tuple[int, needle_conformance.Table]:
        return needle_conformance.run(
            backend, extra_args=[*PLUGIN, "-m", "kernels", "-q"], env=ENV, quiet=True
        )

    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        return dict(zip(CASES, pool.map(one, CASES)))


@pytest.mark.parametrize("backend", list(CASES))
def test_broken_kernel_is_caught_and_named(
    kernel_runs: dict[str, tuple[int, needle_conformance.Table]], backend: str
) -> None:
    kernel = CASES[backend]
    code, table = kernel_runs[backend]
    assert code == 1, f"suite exit code {code} for {backend}\n{table}"
    assert table.failures, f"{backend}: no failures recorded\n{table}"
    for failure in table.failures:
        assert failure.area == "kernels"
        assert kernel in failure.test, f"{backend}: unrelated test failed: {failure.test}"
        assert f"kernel {kernel}" in failure.message, failure.message
        assert "Reproduce with:" in failure.message or "see needle_conformance" in failure.message


def test_broken_add_fails_ops_too_with_reproducer() -> None:
    """Beyond the kernels area: an op using the bad kernel fails with a runnable snippet."""
    select = "test_forward and add-same_shape and float32"
    code, table = needle_conformance.run(
        "broken_add", extra_args=[*PLUGIN, "-m", "ops_forward", "-k", select], env=ENV, quiet=True
    )
    assert code == 1, str(table)
    (failure,) = table.failures
    assert "op add" in failure.message
    assert "ndl.device('broken_add')" in failure.message
    assert "out = ndl.ops.add(x0_t, x1_t)" in failure.message


def test_numpy_backend_passes_the_same_tests() -> None:
    """The control: the unbroken NumPy backend passes the tests the cases above rely on."""
    select = " or ".join(CASES.values())
    code, table = needle_conformance.run(
        "numpy", extra_args=["-m", "kernels", "-k", select], quiet=True
    )
    assert code == 0, "\n".join(f.message for f in table.failures)
    assert table.areas["kernels"]["passed"] >= 10


def test_xfail_file_strict(tmp_path: Path) -> None:
    """A listed gap that fails is xfailed; a listed test that passes fails as XPASS(strict)."""
    gaps = tmp_path / "gaps.txt"
    gaps.write_text(
        "# known gaps of broken_add\n"
        "kernels::test_ewise_binary[ewise_add-*]  # add is off by 1e-3\n"
        "kernels::test_ewise_binary[ewise_sub-float32]  # not actually broken\n"
    )
    code, table = needle_conformance.run(
        "broken_add",
        xfail=gaps,
        extra_args=[*PLUGIN, "-m", "kernels", "-k", "test_ewise_binary"],
        env=ENV,
        quiet=True,
    )
    counts = table.areas["kernels"]
    assert counts["xfailed"] == 2, str(table)  # ewise_add in float32 and float64
    assert [f.test for f in table.failures] == ["kernels::test_ewise_binary[ewise_sub-float32]"]
    assert "XPASS(strict)" in table.failures[0].message
    assert code == 1


def test_xfail_toml(tmp_path: Path) -> None:
    gaps = tmp_path / "gaps.toml"
    gaps.write_text(
        '[[xfail]]\npattern = "kernels::test_ewise_binary[ewise_add-*]"\n'
        'reason = "add is off by 1e-3"\n'
    )
    code, table = needle_conformance.run(
        "broken_add",
        xfail=gaps,
        extra_args=[*PLUGIN, "-m", "kernels", "-k", "ewise_add"],
        env=ENV,
        quiet=True,
    )
    assert code == 0, "\n".join(f.message for f in table.failures)
    assert table.areas["kernels"]["xfailed"] >= 2


def test_main_prints_table(capfd: pytest.CaptureFixture[str]) -> None:
    code = needle_conformance.main(["numpy", "--", "-m", "higher_order"])
    out = capfd.readouterr().out
    assert code == 0
    assert "higher_order" in out and "total" in out
