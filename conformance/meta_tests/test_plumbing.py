"""Fast in-process checks of the suite's own pieces: records, xfail files, the table."""

from __future__ import annotations

from pathlib import Path

import needle
import numpy as np
import pytest
from needle_conformance import Table, summary
from needle_conformance.assertions import assert_close
from needle_conformance.opdb import OP_DB, OpInfo, SampleInput, T, build
from needle_conformance.plugin import load_xfail_file, pattern_matches


def test_missing_op_fails_only_its_own_test() -> None:
    rec = OpInfo("no_such_op", np.negative, lambda: [SampleInput((T((2,)),))])
    assert rec.op is None
    with pytest.raises(pytest.fail.Exception, match=r"needle\.ops has no no_such_op"):
        rec.resolve()


def test_build_runs_the_code_it_prints() -> None:
    """The reproducer is the code that built the inputs: rerunning it gives the same view."""
    sample = SampleInput((T((3, 4), layout="stepped"), T((3, 4), layout="transposed")))
    built = build("add", sample, needle.device("numpy"), "float64")
    ns: dict = {}
    exec(built.repro(()).replace("print(out)", ""), ns)
    np.testing.assert_array_equal(ns["out"].numpy(), built.ref_args[0] + built.ref_args[1])
    assert built.args[0].realize_cached_data().strides == (20, 2)


def test_every_layout_gives_the_reference_values() -> None:
    dev = needle.device("numpy")
    for layout in ("contiguous", "transposed", "sliced", "stepped", "broadcast"):
        built = build(
            "exp", SampleInput((T((2, 3, 4), layout=layout),), desc=layout), dev, "float64"
        )
        np.testing.assert_array_equal(built.args[0].numpy(), built.ref_args[0])


def test_records_have_unique_names_and_samples() -> None:
    names = [r.name for r in OP_DB]
    assert len(names) == len(set(names))
    assert all(r.samples() for r in OP_DB)


def test_pattern_matching_is_literal_except_wildcards() -> None:
    assert pattern_matches("kernels::test_x[ewise_add-*]", "kernels::test_x[ewise_add-float32]")
    assert not pattern_matches("kernels::test_x[ewise_add-*]", "kernels::test_x[e-float32]")
    assert pattern_matches("*conv*", "ops_forward::test_forward[conv-k3-float64]")


def test_xfail_text_and_toml(tmp_path: Path) -> None:
    text = tmp_path / "gaps.txt"
    text.write_text("# comment\n\nkernels::a[*]  # reason one\nerrors::b\n")
    assert load_xfail_file(text) == [("kernels::a[*]", "reason one"), ("errors::b", "known gap")]
    toml = tmp_path / "gaps.toml"
    toml.write_text('[[xfail]]\npattern = "x::y"\nreason = "r"\n')
    assert load_xfail_file(toml) == [("x::y", "r")]
    with pytest.raises(pytest.UsageError, match="no such file"):
        load_xfail_file(tmp_path / "missing.txt")


def test_summary_table() -> None:
    table = Table()
    table.add("kernels", "passed")
    table.add("kernels", "failed")
    table.add("errors", "skipped")
    lines = summary(table).splitlines()
    assert lines[0].split() == [
        "area",
        "passed",
        "failed",
        "skipped",
        "xfailed",
        "xpassed",
        "error",
        "total",
    ]
    assert lines[2].split() == ["kernels", "1", "1", "0", "0", "0", "0", "2"]
    assert lines[-1].split() == ["total", "1", "1", "1", "0", "0", "0", "3"]


def test_assert_close_message_has_what_and_repro() -> None:
    with pytest.raises(pytest.fail.Exception) as info:
        assert_close(
            np.array([1.0, 2.0]),
            np.array([1.0, 2.5]),
            what="kernel foo: 2 elements",
            repro="k.foo(a, out)",
            dtype="float32",
        )
    msg = str(info.value)
    assert "kernel foo: 2 elements" in msg and "index (1,)" in msg
    assert "Reproduce with:\n    k.foo(a, out)" in msg


def test_summary_marks_tests_passed_through_fallback() -> None:
    table = Table()
    table.add("ops_forward", "passed")
    table.add("ops_forward", "passed")
    table.fallback["ops_forward"] = 1
    lines = summary(table).splitlines()
    assert lines[0].split()[-2:] == ["via", "fallback"]
    assert lines[2].split()[-1] == "1"
    assert Table.from_json(table.to_json()).fallback == {"ops_forward": 1}
