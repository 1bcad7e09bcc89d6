"""docs/environment.md is generated from needle/_env.py, and that table is complete.

Complete means: every ``NEEDLE_*`` variable that code in core/, backends/, conformance/
or benchmarks/ reads has a record (Python string literals naming one, C/C++
``getenv("NEEDLE_...")``, CMake ``option(NEEDLE_...)``), and every ``NEEDLE_*`` record
is read somewhere (no stale rows).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from needle import _env

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("core", "backends", "conformance", "benchmarks")
NAME = re.compile(r"NEEDLE_[A-Z0-9_]+")
SKIP_PARTS = {"build", "__pycache__", "_skbuild", "tests", "meta_tests"}  # not test code


def _files(*suffixes: str) -> list[Path]:
    out = []
    for top in SCANNED:
        for path in (ROOT / top).rglob("*"):
            rel = path.relative_to(ROOT).parts
            if path.suffix in suffixes and path.is_file() and not SKIP_PARTS & set(rel):
                out.append(path)
    return out


def read_variables() -> dict[str, set[str]]:
    """NEEDLE_* names the code reads -> the files that read them."""
    found: dict[str, set[str]] = {}

    def add(name: str, path: Path) -> None:
        found.setdefault(name, set()).add(str(path.relative_to(ROOT)))

    for path in _files(".py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            is_str = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_str and NAME.fullmatch(node.value):
                add(node.value, path)
    for path in _files(".cpp", ".cc", ".h", ".hpp", ".cu", ".cuh"):
        for name in re.findall(r'getenv\(\s*"(NEEDLE_[A-Z0-9_]+)"', path.read_text()):
            add(name, path)
    for path in _files(".txt", ".cmake"):
        if path.name == "CMakeLists.txt" or path.suffix == ".cmake":
            for name in re.findall(r"\boption\(\s*(NEEDLE_[A-Z0-9_]+)", path.read_text()):
                add(name, path)
    return found


def _table_names() -> set[str]:
    return {n.strip() for var in _env.VARIABLES for n in var.name.split(",")}


def test_doc_is_generated_from_the_table() -> None:
    doc = ROOT / "docs" / "environment.md"
    assert doc.read_text(encoding="utf-8") == _env.render_markdown(), (
        "docs/environment.md is out of date: run python tools/gen_env_doc.py"
    )


def test_generator_check_mode_agrees() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_env_doc.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_needle_variable_read_is_in_the_table() -> None:
    read = read_variables()
    assert {"NEEDLE_BACKEND", "NEEDLE_DATA", "NEEDLE_FALLBACK"} <= set(read)  # the scan works
    missing = {name: sorted(files) for name, files in read.items() if name not in _table_names()}
    assert not missing, f"add these to needle/_env.py (read by): {missing}"


def test_every_needle_record_is_read_somewhere() -> None:
    read = read_variables()
    stale = sorted(n for n in _table_names() if n.startswith("NEEDLE_") and n not in read)
    assert not stale, f"needle/_env.py documents variables nothing reads: {stale}"


@pytest.mark.parametrize(
    "name",
    ["NEEDLE_BACKEND", "NEEDLE_DATA", "NEEDLE_STRICT_PLUGINS", "NEEDLE_FALLBACK",
     "NEEDLE_CPP_NATIVE", "NEEDLE_BENCH_THREADS", "OMP_NUM_THREADS", "GOMP_SPINCOUNT"],
)  # fmt: skip
def test_documented(name: str) -> None:
    var = _env.variable(name)
    assert var.default and var.meaning and var.read_by
    assert f"`{name}`" in _env.render_markdown()


def test_records_are_well_formed() -> None:
    names = [n for var in _env.VARIABLES for n in (p.strip() for p in var.name.split(","))]
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert {var.kind for var in _env.VARIABLES} == {"runtime", "build"}
    for var in _env.VARIABLES:
        assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", n) for n in var.name.split(", ")), var.name


def test_unknown_variable_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="NEEDLE_NOPE"):
        _env.variable("NEEDLE_NOPE")
