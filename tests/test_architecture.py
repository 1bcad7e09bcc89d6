"""The core's shape, enforced: layers import only downward, the engine stays small,
ops reach kernels only through NDArray, and ``a + b`` takes one short path.

Layers (docs/architecture.md), from the top:

1. ``nn``, ``optim``, ``init``, ``data``, ``models``, ``training``, ``distributed``,
   ``serialization``, ``cli`` and the ``needle`` package facade: Tensor operations only.
2. ``autograd`` and ``ops``: every op has ``compute`` on NDArrays, ``gradient`` on Tensors.
3. ``backend_ndarray``: NDArray and Device, the one layer that calls kernels.
4. ``backends``: the plugin host, which knows nothing of arrays.

Leaf utilities (``random``, ``_env``) import nothing from needle and may be used by any
layer. A module may import its own layer and the layers below it, never above.
"""

from __future__ import annotations

import ast
import builtins
import io
import runpy
import sys
import tokenize
from pathlib import Path

import needle as ndl
import numpy as np
import pytest

CORE = Path(ndl.__file__).resolve().parent
TOOL = CORE.parent.parent / "tools" / "gen_layers.py"
if not TOOL.exists():
    pytest.skip(
        "tools/gen_layers.py (the import-graph reader) needs the repository checkout",
        allow_module_level=True,
    )
# One reader of the import graph for this test and the docs' diagram: tools/gen_layers.py.
_graph = runpy.run_path(str(TOOL))
LEAVES: set[str] = _graph["LEAVES"]
layer = _graph["layer"]
MODULES: dict[str, Path] = _graph["modules"](CORE)

# Line budget, in logical lines of code (statements; blank lines, comments, docstrings
# and the formatter's line wrapping do not count): the engine should stay readable end
# to end, and documentation is free.
ENGINE_BUDGET = 4200  # autograd + ops + backend_ndarray + the plugin host (backends/)
# The engine is what issue 11 named: autograd, ops, NDArray and the plugin host. The
# contract module (the kernel records with their NumPy references: a specification that
# grows by one record per optional kernel) is counted in the core's budget, not here.
SPECIFICATION = ("needle.backends.contract",)
CORE_BUDGET = 9000  # everything under core/needle


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> list[str]:
    return _graph["resolve"](module, is_pkg, node, MODULES)  # type: ignore[no-any-return]


def imports_of(module: str) -> list[tuple[str, int]]:
    """Every needle module ``module`` imports (at any depth in the file), with line numbers."""
    return _graph["imports_of"](module, MODULES)  # type: ignore[no-any-return]


def test_layers_import_only_downward():
    violations = []
    for module in MODULES:
        for target, line in imports_of(module):
            if module in LEAVES:
                violations.append(f"{module}:{line} is a leaf utility but imports {target}")
            elif layer(target) < layer(module):
                violations.append(
                    f"{module}:{line} (layer {layer(module)}) imports {target} "
                    f"(layer {layer(target)}, above it)"
                )
    assert not violations, "imports against the layering:\n" + "\n".join(violations)


def test_layer_test_catches_an_upward_import():
    """The checker itself: an upward import is reported (guards against a vacuous pass)."""
    tree = ast.parse("from ..ops import add\n")
    node = tree.body[0]
    assert isinstance(node, ast.ImportFrom)
    (target,) = _resolve("needle.backend_ndarray.ndarray", False, node)
    assert target == "needle.ops" and layer(target) < layer("needle.backend_ndarray.ndarray")


def test_core_imports_no_distribution_by_name():
    """Backends and the conformance kit are reached through entry points only.

    (CuPy is not banned: ``needle.distributed`` drives NCCL through it, imported lazily.)
    """
    banned = ("needle_numpy", "needle_cpp", "needle_cuda", "needle_conformance", "torch")
    found = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            found += [
                f"{module}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in banned
            ]
    assert not found, "\n".join(found)


def test_host_modules_import_no_cycle():
    host = {m for m in MODULES if m.startswith("needle.backends")}
    graph = {m: {t for t, _ in imports_of(m) if t in host and t != m} for m in host}
    graph = {m: {t for t in ts if t != "needle.backends"} for m, ts in graph.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = [m for m in host if m != "needle.backends" and reaches(m, m, {m})]
    assert not cycles, f"import cycles among the plugin host's modules: {sorted(cycles)}"


def test_autograd_has_no_function_local_imports():
    tree = ast.parse(MODULES["needle.autograd"].read_text())
    local = [
        node.lineno
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn)
        if isinstance(node, (ast.Import, ast.ImportFrom))
    ]
    assert not local, f"function-local imports in autograd.py at lines {local}"


def test_ops_use_only_ndarray_public_api():
    """Ops never touch NDArray internals (handles) nor call kernels themselves."""
    bad = []
    for module, path in MODULES.items():
        if not module.startswith("needle.ops"):
            continue
        for i, text in enumerate(path.read_text().splitlines(), 1):
            if "_handle" in text or "has_kernel" in text:
                bad.append(f"{module}:{i}: {text.strip()}")
    assert not bad, "\n".join(bad)


def _code_lines(path: Path) -> int:
    """Logical lines of code: statements as Python's tokenizer ends them (a call that the
    formatter wraps over five physical lines is one), docstrings excluded."""
    src = path.read_text()
    doc: set[int] = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                doc.add(first.end_lineno or first.lineno)  # where its NEWLINE is
    return sum(
        1
        for tok in tokenize.generate_tokens(io.StringIO(src).readline)
        if tok.type == tokenize.NEWLINE and tok.start[0] not in doc
    )


def test_code_line_counter_counts_code_only():
    sample = (
        '"""doc\nstring"""\n\n# comment\nx = 1  # trailing\n\n\n'
        'def f():\n    """doc"""\n    return (1 +\n            2)\n'
    )
    path = Path(__file__).with_name("_sloc_sample.tmp")
    try:
        path.write_text(sample)
        assert _code_lines(path) == 3  # x = 1, def f(), and the (wrapped) return
    finally:
        path.unlink()


def test_line_budget():
    engine = [m for m in MODULES if layer(m) in (2, 3, 4) and m not in SPECIFICATION]
    engine_lines = sum(_code_lines(MODULES[m]) for m in engine)
    core_lines = sum(_code_lines(p) for p in MODULES.values())
    assert engine_lines <= ENGINE_BUDGET, (
        f"the engine (autograd, ops, backend_ndarray, the plugin host) has {engine_lines} logical "
        "lines, "
        f"over its budget of {ENGINE_BUDGET}"
    )
    assert core_lines <= CORE_BUDGET, (
        f"core/needle has {core_lines} logical lines, over its budget of {CORE_BUDGET}"
    )


def test_add_walks_straight_to_the_kernel():
    """``a + b``: no import and no ``getattr`` by string outside NDArray's kernel lookup."""
    a = ndl.Tensor(np.ones((2, 3), dtype=np.float32), device="numpy")
    b = ndl.Tensor(np.ones((2, 3), dtype=np.float32), device="numpy")
    _ = a + b  # warm the device's kernel cache
    imports: list[str] = []
    getattrs: list[str] = []
    real_import = builtins.__import__

    def counting_import(name, *args, **kwargs):
        caller = Path(sys._getframe(1).f_code.co_filename).resolve()
        if caller.is_relative_to(CORE):  # NumPy's own lazy imports are not ours
            imports.append(f"{caller.name}: {name}")
        return real_import(name, *args, **kwargs)

    def profile(frame, event, arg):
        if event == "c_call" and arg is getattr:
            where = Path(frame.f_code.co_filename).resolve()
            if where != CORE / "backend_ndarray" / "ndarray.py":
                getattrs.append(f"{where.name}:{frame.f_code.co_name}")

    builtins.__import__ = counting_import
    sys.setprofile(profile)
    try:
        out = a + b
    finally:
        sys.setprofile(None)
        builtins.__import__ = real_import
    np.testing.assert_array_equal(out.numpy(), np.full((2, 3), 2.0, dtype=np.float32))
    assert imports == [], f"a + b imported {imports}"
    assert getattrs == [], f"a + b called getattr outside NDArray: {getattrs}"


@pytest.mark.parametrize("spec", ["numpy", "cpp"])
def test_device_name_resolves_once(spec, monkeypatch):
    """``Tensor(x, device="numpy")`` looks the name up in the device table once."""
    device_module = sys.modules["needle.backend_ndarray.device"]

    if not device_module.device(spec).enabled():
        pytest.skip(f"backend {spec} not usable here")
    calls = []
    real = device_module.device

    def counting(s=None):
        if isinstance(s, str):
            calls.append(s)
        return real(s)

    monkeypatch.setattr(device_module, "device", counting)
    import needle.autograd as autograd
    import needle.backend_ndarray.ndarray as ndarray_module

    monkeypatch.setattr(autograd, "_device", counting)
    monkeypatch.setattr(ndarray_module, "_device", counting)
    t = ndl.Tensor([1.0, 2.0], device=spec)
    assert t.device == real(spec)
    assert calls == [spec], f"the name was resolved {len(calls)} times: {calls}"


def test_layer_diagram_in_the_docs_is_current():
    """docs/architecture.md shows the layers as the imports really are."""
    doc = _graph["DOC"].read_text()
    assert _graph["render"](doc) == doc, "docs/architecture.md is stale: run tools/gen_layers.py"
