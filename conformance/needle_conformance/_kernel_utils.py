"""Helpers for calling kernels directly on flat buffers, with reproducible data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

from .opdb import KINDS


def gen(
    var: str, kind: str, shape: tuple[int, ...], seed: int, dtype: str
) -> tuple[np.ndarray, list[str]]:
    """NumPy data of ``kind`` rounded to ``dtype``, and the lines that make it as ``var``."""
    size = int(np.prod(shape, dtype=np.int64))
    lines = [
        f"rng = np.random.default_rng({seed})",
        f"{var} = ({KINDS[kind].format(shape=shape, size=size)}).astype({dtype!r})",
    ]
    ns: dict[str, Any] = {"np": np}
    exec("\n".join(lines), ns)  # the same lines the reproducer prints
    return ns[var], lines


def upload(k: Any, data: np.ndarray, dtype: str) -> Any:
    """A new buffer holding ``data`` flattened (alloc + from_numpy)."""
    h = k.alloc(int(data.size), dtype)
    k.from_numpy(np.ascontiguousarray(data, dtype=dtype).reshape(-1), h)
    return h


def upload_code(var: str, src: str, dtype: str) -> list[str]:
    return [
        f"{var} = k.alloc({src}.size, {dtype!r})",
        f"k.from_numpy(np.ascontiguousarray({src}, dtype={dtype!r}).reshape(-1), {var})",
    ]


def download(k: Any, h: Any, n: int | None = None) -> np.ndarray:
    """The first ``n`` (default: all) elements of a buffer, as a 1-D NumPy array."""
    n = h.size if n is None else n
    return np.asarray(k.to_numpy(h, (n,), (1,), 0))


def expected(spec: Any, *args: Any) -> np.ndarray:
    """``spec.reference`` (a ``KernelSpec`` record's NumPy oracle) on float64 copies of the
    array arguments; other arguments (scalars, shapes) pass through unchanged."""
    if spec.reference is None:
        raise AssertionError(f"kernel {spec.name} has no NumPy reference in the contract")
    wide = [a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args]
    with np.errstate(all="ignore"):
        return np.asarray(spec.reference(*wide), dtype=np.float64)


def error_args(k: Any, spec: Any, case: Any, dtype: str, dtypes: list[str]) -> Any:
    """The arguments of error ``case`` of kernel ``spec`` in ``dtype``, with the first
    other of ``dtypes`` where the case mixes dtypes (skipped when there is none)."""
    others = [d for d in dtypes if d != dtype]
    if case.needs_other_dtype and not others:
        pytest.skip(f"{spec.name}: {case.description} needs a second dtype")
    return case.make_args(k, dtype, others[0] if others else None)


def _arg_code(i: int, arg: Any, k: Any) -> tuple[str, list[str]]:
    """How the reproducer builds argument ``i`` of an error case."""
    if isinstance(arg, np.ndarray):
        return f"np.{arg!r}", []
    if hasattr(arg, "size") and hasattr(arg, "dtype"):
        var = f"h{i}"
        values = download(k, arg) if arg.size else np.zeros(0)
        return var, [
            f"{var} = k.alloc({arg.size}, {arg.dtype!r})",
            f"k.from_numpy(np.array({values.tolist()!r}), {var})",
        ]
    return repr(arg), []


def error_repro(k: Any, backend: str, name: str, args: tuple[Any, ...]) -> str:
    """A runnable reproducer of the call ``name(*args)`` (handles rebuilt from their
    contents), as printed by the error-case tests."""
    lines, codes = [], []
    for i, arg in enumerate(args):
        code, setup = _arg_code(i, arg, k)
        lines += setup
        codes.append(code)
    return "\n".join([*header(backend), *lines, f"k.{name}({', '.join(codes)})"])


def header(backend: str) -> list[str]:
    return ["import numpy as np", "import needle", f"k = needle.device({backend!r}).kernels"]


@st.composite
def strided_views(draw: Any, injective: bool = False, max_ndim: int = 4) -> dict[str, Any]:
    """A (shape, strides, offset, buffer size) with every element inside the buffer.

    ``injective`` views touch each buffer element at most once (safe to write through):
    axes in a random order get mixed-radix strides with random gaps.
    """
    ndim = draw(st.integers(0, max_ndim))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    if injective:
        order = draw(st.permutations(range(ndim)))
        strides = [0] * ndim
        extent = 1
        for ax in order:
            strides[ax] = extent * draw(st.integers(1, 2))
            extent = strides[ax] * max(shape[ax], 1)
    else:
        strides = draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim))
    offset = draw(st.integers(0, 7))
    reach = sum((n - 1) * s for n, s in zip(shape, strides)) if 0 not in shape else 0
    size = offset + reach + 1 + draw(st.integers(0, 3))
    return {"shape": shape, "strides": tuple(strides), "offset": offset, "size": size}
