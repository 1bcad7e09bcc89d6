"""Draw the core's layer diagram from its real imports, into docs/architecture.md.

    python tools/gen_layers.py           # rewrite the block between the markers
    python tools/gen_layers.py --check   # exit 1 when the doc is out of date

Each line is one part of ``core/needle`` (a sub-package or top-level module) and the
parts it imports, found by parsing every ``import`` statement (function-local ones too).
Parts are grouped by layer, top first, as ``tests/test_architecture.py`` enforces them.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core" / "needle"
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- layers:begin (tools/gen_layers.py) -->", "<!-- layers:end -->"

# Parts of core/needle by layer (1 = top). Parts not named are applications (layer 1);
# leaf utilities import nothing from needle and may be used by any layer.
LAYER_OF_PART = {"autograd": 2, "ops": 2, "backend_ndarray": 3, "backends": 4}
LEAVES = {"needle.random", "needle._env"}
TITLES = {
    1: "1 applications: Tensor operations only",
    2: "2 autograd and ops: compute on NDArrays, gradient on Tensors",
    3: "3 the array layer: NDArray, Device, capture; the only caller of kernels",
    4: "4 the plugin host: contract, discovery, validation; no arrays",
    99: "leaf utilities: import nothing from needle",
}


def part_of(module: str) -> str:
    """``needle.ops.arithmetic`` -> ``ops``; the package itself -> ``needle``."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "needle"


def layer(module: str) -> int:
    """The layer of a needle module (1 = top); 99 for leaf utilities."""
    return 99 if module in LEAVES else LAYER_OF_PART.get(part_of(module), 1)


def modules(core: Path = CORE) -> dict[str, Path]:
    """Every module of the package at ``core``, by dotted name."""
    out = {}
    for path in sorted(core.rglob("*.py")):
        rel = path.relative_to(core.parent).with_suffix("").parts
        out[".".join(rel[:-1] if rel[-1] == "__init__" else rel)] = path
    return out


def resolve(module: str, is_pkg: bool, node: ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    """Absolute names of the modules a ``from ... import ...`` statement loads."""
    if node.level:
        base = module.split(".") if is_pkg else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]


def imports_of(name: str, known: dict[str, Path]) -> list[tuple[str, int]]:
    """Every needle module ``name`` imports (function-local imports too), with its line."""
    path = known[name]
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            is_pkg = path.name == "__init__.py"
            found += [(t, node.lineno) for t in resolve(name, is_pkg, node, known)]
    return [(m, line) for m, line in found if m == "needle" or m.startswith("needle.")]


def diagram() -> str:
    known = modules()
    edges: dict[str, set[str]] = {}
    for name in known:
        src = part_of(name)
        deps = edges.setdefault(src, set())
        deps.update(part_of(t) for t, _ in imports_of(name, known) if part_of(t) != src)
    parts = sorted(edges)
    width = max(len(p) for p in parts) + 2
    lines = ["```"]
    for number, title in TITLES.items():
        group = [p for p in parts if layer(f"needle.{p}") == number]
        if not group:
            continue
        lines.append(f"[{title}]")
        lines += [f"  {p.ljust(width)}imports {', '.join(sorted(edges[p])) or '-'}" for p in group]
    lines.append("```")
    return "\n".join(lines)


def render(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{DOC}: markers {BEGIN!r} ... {END!r} not found")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{diagram()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    text = DOC.read_text()
    new = render(text)
    if "--check" in argv:
        if new != text:
            print(f"{DOC} is out of date: run python tools/gen_layers.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
