"""Meta-tests: the suite must catch deliberately broken backends and name the kernel.

Each broken backend (see ``broken_backends.py``) is the NumPy backend with one kernel
wrong. The kernels area runs against it in a subprocess; it must fail, every failure
must be in a test of the guilty kernel, and the failure text must name that kernel.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import needle_conformance
import pytest

HERE = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
PLUGIN = ["-p", "broken_backends"]

pytestmark = pytest.mark.slow

sys.path.insert(0, str(HERE))
import mutation  # noqa: E402

BUGS = mutation.bugs()


def test_at_least_40_bugs_across_every_family() -> None:
    """The mutants cover every kernel family and the optional kernels."""
    from needle.backends import KERNELS

    assert len(BUGS) >= 40
    families = {KERNELS[kernel].family for kernel, _ in BUGS.values()}
    assert families == {
        "buffer",
        "layout",
        "ewise_binary",
        "scalar_binary",
        "ewise_unary",
        "reduce",
        "matmul",
        "optional",
    }


@pytest.fixture(scope="module")
def outcomes() -> dict[str, mutation.Outcome]:
    """The kernels area (ci profile) against every broken backend, two runs at a time."""
    return {o.backend: o for o in mutation.run_all(workers=2)}


@pytest.mark.parametrize("backend", list(BUGS))
def test_broken_kernel_is_caught_and_named(
    outcomes: dict[str, mutation.Outcome], backend: str
) -> None:
    outcome = outcomes[backend]
    assert outcome.caught, f"{backend} ({outcome.description}):\n" + "\n".join(outcome.problems)
    for failure in outcome.table.failures:
        assert "Reproduce with:" in failure.message, failure.message


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
    """The control: the unbroken NumPy backend passes every kernel test the bugs fail."""
    code, table = needle_conformance.run("numpy", extra_args=["-m", "kernels"], quiet=True)
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
        extra_args=[*PLUGIN, "-m", "kernels", "-k", "test_ewise_binary and ewise_add"],
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


def test_op_failure_after_a_kernel_failure_names_the_kernel() -> None:
    """The kernels area runs first; an op test that calls the failed kernel says so."""
    select = "test_ewise_binary and ewise_add or test_forward and add-same_shape and float32"
    code, table = needle_conformance.run(
        "broken_add", extra_args=[*PLUGIN, "-k", select], env=ENV, quiet=True
    )
    assert code == 1, str(table)
    areas = [f.area for f in table.failures]
    assert areas[0] == "kernels" and "ops_forward" in areas, areas
    (op_failure,) = [f for f in table.failures if f.area == "ops_forward"]
    assert op_failure.message.startswith("kernel ewise_add already failed (kernels::")
