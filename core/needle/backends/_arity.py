"""How many positional arguments a kernel accepts, for registration's arity check.

Python functions answer through :func:`inspect.signature`. Compiled functions (pybind11
builtins) usually have no signature object but start their ``__doc__`` with one, such as
``ewise_add(a: needle_cpp._core.Array, b: ..., out: ...) -> None``; that line is parsed.
When neither works (an overloaded builtin, a stripped docstring) the arity is unknown and
the check is skipped.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any

_DOC_SIGNATURE = re.compile(r"^\s*(\w+)\((.*)\)\s*(?:->.*)?$")


@dataclass(frozen=True)
class Arity:
    """Positional arguments a callable accepts: ``low`` to ``high`` (``None``: no limit)."""

    low: int
    high: int | None
    shown: str
    """The parameter list as found, for messages: ``"(a, b)"``."""

    def accepts(self, n: int) -> bool:
        return self.low <= n and (self.high is None or n <= self.high)


def _from_signature(fn: Any) -> Arity | None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    low, high, names = 0, 0, []
    unbounded = False
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            high += 1
            low += p.default is p.empty
            names.append(p.name)
        elif p.kind is p.VAR_POSITIONAL:
            unbounded = True
            names.append(f"*{p.name}")
        elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            names.append(f"*, {p.name}")  # cannot be passed positionally: never satisfiable
            return Arity(1, 0, f"({', '.join(names)})")
    return Arity(low, None if unbounded else high, f"({', '.join(names)})")


def _split_params(text: str) -> list[str]:
    """Top-level comma split of a parameter list (types may hold brackets and commas)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _from_doc(fn: Any) -> Arity | None:
    doc = getattr(fn, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return None
    match = _DOC_SIGNATURE.match(doc.strip().splitlines()[0])
    if match is None:
        return None
    params = _split_params(match.group(2))
    if params and params[0].split(":")[0].strip() == "self":
        params = params[1:]  # a bound method's doc line names self
    names = [p.split(":")[0].split("=")[0].strip() for p in params]
    if any(n.startswith("*") for n in names):
        return None  # "(*args, **kwargs)": an overloaded builtin says nothing useful
    low = sum("=" not in p for p in params)
    return Arity(low, len(params), f"({', '.join(names)})")


def arity_of(fn: Any) -> Arity | None:
    """The positional arity of ``fn``, or ``None`` when it cannot be determined."""
    return _from_signature(fn) or _from_doc(fn)
