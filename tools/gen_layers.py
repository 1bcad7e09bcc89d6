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

LAYERS = [
    ("1 applications: Tensor operations only", None),
    ("2 autograd and ops: compute on NDArrays, gradient on Tensors", {"autograd", "ops"}),
    (
        "3 the array layer: NDArray, Device, capture; the only caller of kernels",
        {"backend_ndarray"},
    ),
    ("4 the plugin host: contract, discovery, validation; no arrays", {"backends"}),
    ("leaf utilities: import nothing from needle", {"random", "_env"}),
]


def part_of(module: str) -> str:
    """``needle.ops.arithmetic`` -> ``ops``; the package itself -> ``needle``."""
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "needle"


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(CORE.rglob("*.py")):
        rel = path.relative_to(CORE.parent).with_suffix("").parts
        name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        out[name] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m == "needle" or m.startswith("needle.")}


def diagram() -> str:
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        src = part_of(name)
        for target in imports(name, path, known):
            dst = part_of(target)
            if dst != src:
                edges.setdefault(src, set()).add(dst)
            else:
                edges.setdefault(src, set())
    parts = sorted(edges)
    lines = ["```"]
    width = max(len(p) for p in parts) + 2
    for title, members in LAYERS:
        if members is None:
            members = {p for p in parts if not any(p in m for _, m in LAYERS if m is not None)}
        group = [p for p in parts if p in members]
        if not group:
            continue
        lines.append(f"[{title}]")
        for p in group:
            deps = ", ".join(sorted(edges[p])) or "-"
            lines.append(f"  {p.ljust(width)}imports {deps}")
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
