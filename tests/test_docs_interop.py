"""Every ``python`` code block of docs/interop.md runs, in a fresh namespace, and its
asserts hold. A block that imports a library that is not installed (torch, jax, cupy) or
uses a needle device that is not usable here (``device="cpp"``, ``device="cuda"``, or a
``# needs: cuda`` line) is skipped with the reason."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "interop.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
_OPTIONAL_LIBS = ("torch", "jax", "cupy")


def _blocks() -> list[tuple[int, str]]:
    text = DOC.read_text()
    return [(text[: m.start()].count("\n") + 1, m.group(1)) for m in _BLOCK.finditer(text)]


def _needs(code: str) -> tuple[set[str], set[str]]:
    """(third-party modules imported, needle devices used) by a block."""
    libs = {
        m.group(1)
        for m in re.finditer(r"^\s*(?:import|from)\s+(\w+)", code, re.M)
        if m.group(1) in _OPTIONAL_LIBS
    }
    devices = set(re.findall(r'device="(cpp|cuda)"', code))
    devices |= set(re.findall(r"^# needs: (\w+)", code, re.M))
    return libs, devices


BLOCKS = _blocks()


def test_the_doc_has_an_example_for_each_library() -> None:
    imported = set().union(*(_needs(code)[0] for _, code in BLOCKS))
    assert imported == set(_OPTIONAL_LIBS), imported
    assert any("np.asarray" in code for _, code in BLOCKS)


@pytest.mark.parametrize("line,code", BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_code_block_runs(line: int, code: str) -> None:
    import needle

    libs, devices = _needs(code)
    for lib in sorted(libs):
        if importlib.util.find_spec(lib) is None:
            pytest.skip(f"docs/interop.md line {line}: {lib} is not installed")
    for dev in sorted(devices):
        try:
            usable = needle.device(dev).enabled()
        except Exception as exc:  # not installed
            usable, why = False, str(exc)
        else:
            why = "not usable here"
        if not usable:
            pytest.skip(f"docs/interop.md line {line}: needle device {dev!r} {why}")
    namespace: dict[str, object] = {"__name__": "docs_interop"}
    exec(compile(code, f"docs/interop.md:{line}", "exec"), namespace)
