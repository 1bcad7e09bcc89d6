"""The records of the op database and the machinery that turns them into calls.

How a record is used
--------------------
An :class:`OpInfo` describes one function of ``needle.ops``. Its ``samples()`` returns
:class:`SampleInput` objects whose arguments mix plain Python values with :class:`T`
placeholders (one per tensor argument). :func:`build` turns a sample into real
arguments on the device under test by *executing generated Python lines*; the same
lines are printed when a test fails, so the reproducer is exactly what ran.

A :class:`T` says how to make one tensor: its shape, the kind of values (``normal``,
``positive``...) and its memory layout (``contiguous``, ``transposed``, ``sliced``,
``stepped``, ``broadcast``, ``leading`` or ``split``). ``leading`` is the first rows of a
taller buffer (compact, offset 0, but the buffer is larger than the view, as after
``x[:2]``); ``split`` is a compact block at a non-zero offset (a part of ``split``). The
NumPy reference receives the same values as float64 arrays, rounded to the dtype under
test first, so rounding of the inputs never counts as an error.

Adding an op = adding one ``OpInfo`` to a family module and to ``OP_DB``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import needle
import numpy as np
import pytest
from needle.backend_ndarray import NDArray

from ..assertions import TOLERANCES

KINDS: dict[str, str] = {
    "normal": "rng.standard_normal({shape})",
    "positive": "rng.uniform(0.5, 2.0, {shape})",
    "nonzero": "rng.choice([-1.0, 1.0], {shape}) * rng.uniform(0.3, 2.0, {shape})",
    "unit": "rng.uniform(-0.9, 0.9, {shape})",
    "ints": "rng.integers(-2, 3, {shape}).astype(float)",
    "labels": "rng.integers(0, 5, {shape}).astype(float)",
    "mask": "(rng.random({shape}) < 0.5).astype(float)",
    "distinct": "(rng.permutation({size}) + rng.uniform(0.2, 0.8, {size}))"
    ".reshape({shape}) / {size}",
    "large": "rng.standard_normal({shape}) + 1000.0",
}
"""Value recipes: Python expressions over ``rng`` (a seeded NumPy Generator)."""

LAYOUTS = ("contiguous", "transposed", "sliced", "stepped", "broadcast", "leading", "split")


@dataclass(frozen=True)
class T:
    """A tensor argument of a sample: shape, kind of values, memory layout.

    Attributes:
        grad: whether gradient checks differentiate with respect to it.
        dtype: force this dtype instead of the one under test (for error inputs).
    """

    shape: tuple[int, ...]
    kind: str = "normal"
    layout: str = "contiguous"
    grad: bool = True
    dtype: str | None = None

    def small_shape(self) -> tuple[int, ...]:
        """The shape actually stored: broadcast views store size 1 on even axes."""
        if self.layout != "broadcast":
            return self.shape
        return tuple(1 if i % 2 == 0 else n for i, n in enumerate(self.shape))

    def code(self, var: str, seed: int, dtype: str) -> list[str]:
        """Lines that define ``var`` (NumPy float64) and ``var_nd`` (the NDArray view)."""
        shape = self.small_shape()
        size = int(np.prod(shape, dtype=np.int64))
        expr = KINDS[self.kind].format(shape=shape, size=size)
        lines = [f"rng = np.random.default_rng({seed})", f"{var} = {expr}"]
        nd = self.shape
        make = f"NDArray({{}}, device=dev, dtype={dtype!r})"
        if self.layout == "contiguous":
            lines.append(f"{var}_nd = " + make.format(var))
        elif self.layout == "transposed":
            if len(nd) < 2:
                raise ValueError(f"layout 'transposed' needs 2+ dims, got shape {nd}")
            axes = (*range(len(nd) - 2), len(nd) - 1, len(nd) - 2)
            src = f"np.ascontiguousarray({var}.transpose({axes}))"
            lines.append(f"{var}_nd = " + make.format(src) + f".permute({axes})")
        elif self.layout in ("sliced", "stepped"):
            if not nd:  # a 0-d view at an offset: element 1 of a 1-D buffer
                lines.append(f"{var}_nd = " + make.format(f"np.array([0.0, {var}])") + "[1]")
            else:
                step = 2 if self.layout == "stepped" else 1
                big = tuple(step * n + 2 for n in nd)
                index = "(" + "".join(f"slice(1, {1 + step * n}, {step}), " for n in nd) + ")"
                lines += [
                    f"base = np.zeros({big})",
                    f"base[{index}] = {var}",
                    f"{var}_nd = " + make.format("base") + f"[{index}]",
                ]
        elif self.layout == "broadcast":
            lines.append(f"{var}_nd = " + make.format(var) + f".broadcast_to({nd})")
        elif self.layout in ("leading", "split"):
            # Rows of a taller compact buffer: [0, n) for leading, [1, n + 1) for split.
            start = 0 if self.layout == "leading" else 1
            if not nd:
                lines.append(
                    f"{var}_nd = "
                    + make.format(f"np.array([0.0, {var}, 0.0][{1 - start}:])")
                    + f"[{start}]"
                )
            else:
                lines += [
                    f"base = np.zeros({(nd[0] + 2, *nd[1:])})",
                    f"base[{start}:{start + nd[0]}] = {var}",
                    f"{var}_nd = " + make.format("base") + f"[{start}:{start + nd[0]}]",
                ]
        else:
            raise ValueError(f"unknown layout {self.layout!r}; known: {LAYOUTS}")
        return lines

    def value(self, namespace: dict[str, Any], var: str, dtype: str) -> np.ndarray:
        """The float64 reference value of ``var`` after its code ran in ``namespace``."""
        raw = np.broadcast_to(namespace[var], self.shape)
        return np.array(raw, dtype=dtype, order="C").astype(np.float64, order="C")


@dataclass(frozen=True)
class SampleInput:
    """One call of an op: positional ``args`` (``T`` placeholders allowed, also inside
    lists/tuples) and ``kwargs``; ``desc`` names it in test ids.

    ``grad=False`` keeps it out of gradient checks (kinks, ties, integer inputs).
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    desc: str = ""
    grad: bool = True


@dataclass(frozen=True)
class ErrorInput:
    """A call that must raise ``exc`` with a message matching the regex ``match``."""

    sample: SampleInput
    exc: type[BaseException]
    match: str = ""


def _no_errors() -> list[ErrorInput]:
    return []


@dataclass(frozen=True)
class OpInfo:
    """One op of the database.

    Attributes:
        name: the function's name in ``needle.ops``.
        ref: the NumPy reference: takes float64 arrays where the op takes tensors (and
            lists of arrays for lists of tensors), the same other arguments, and returns
            an array (or a list of arrays for tuple ops).
        samples: returns the sample inputs.
        errors: returns the error inputs.
        dtypes: the dtypes the op is defined for (intersected with the run's dtypes).
        differentiable: whether the gradient area checks it.
        tolerances: (rtol, atol) per dtype, overriding ``assertions.TOLERANCES``.
        grad_tolerance: (rtol, atol) of the finite-difference comparison (float64).
        out_dtype: the result's dtype: ``"same"`` (the input's) or a fixed name.
    """

    name: str
    ref: Callable[..., Any]
    samples: Callable[[], list[SampleInput]]
    errors: Callable[[], list[ErrorInput]] = _no_errors
    dtypes: tuple[str, ...] = ("float32", "float64")
    differentiable: bool = True
    tolerances: dict[str, tuple[float, float]] = field(default_factory=dict)
    grad_tolerance: tuple[float, float] = (1e-5, 1e-6)
    out_dtype: str = "same"

    @property
    def op(self) -> Callable[..., Any] | None:
        """The needle callable, or None while ``needle.ops`` lacks it."""
        return getattr(needle.ops, self.name, None)

    def resolve(self) -> Callable[..., Any]:
        """The needle callable; fails (only) the calling test when it does not exist."""
        fn = self.op
        if fn is None:
            pytest.fail(
                f"needle.ops has no {self.name} (op database record {self.name!r})", pytrace=False
            )
        return fn

    def tolerance(self, dtype: str) -> tuple[float, float]:
        return self.tolerances.get(dtype, TOLERANCES.get(dtype, TOLERANCES["float32"]))


@dataclass
class Built:
    """A sample made real: needle arguments, NumPy reference arguments, code and leaves."""

    args: list[Any]
    ref_args: list[Any]
    code: list[str]
    call: str
    leaves: list[tuple[Any, np.ndarray]]
    described: list[str]

    def repro(self, header: Sequence[str] = ()) -> str:
        return "\n".join([*header, *self.code, self.call, "print(out)"])


def _seed(*parts: Any) -> int:
    return zlib.crc32(repr(parts).encode()) % 100_000


def build(
    op_name: str,
    sample: SampleInput,
    device: needle.Device,
    dtype: str,
    *,
    requires_grad: bool = False,
) -> Built:
    """Create the sample's tensors on ``device`` in ``dtype`` by running generated code.

    With ``requires_grad``, tensors whose ``T.grad`` is true are leaves that require
    gradients; ``Built.leaves`` pairs each with its (mutable) float64 reference array.
    """
    ns: dict[str, Any] = {"np": np, "ndl": needle, "NDArray": NDArray, "dev": device}
    code = [
        "import numpy as np",
        "import needle as ndl",
        "from needle.backend_ndarray import NDArray",
        f"dev = ndl.device({str(device)!r})",
    ]
    leaves: list[tuple[Any, np.ndarray]] = []
    described: list[str] = []
    counter = [0]

    def make(x: Any) -> tuple[Any, Any, str]:
        if isinstance(x, T):
            var = f"x{counter[0]}"
            counter[0] += 1
            dt = x.dtype or dtype
            lines = x.code(var, _seed(op_name, sample.desc, var, x), dt)
            grad = requires_grad and x.grad
            lines.append(f"{var}_t = ndl.Tensor({var}_nd, requires_grad={grad})")
            exec("\n".join(lines), ns)  # our own generated code: the reproducer itself
            code.extend(lines)
            ref = x.value(ns, var, dt)
            nd_arr = ns[f"{var}_nd"]
            described.append(
                f"{var}: {dt} shape {nd_arr.shape} strides {nd_arr.strides} "
                f"offset {nd_arr._offset} ({x.layout}, {x.kind})"
            )
            if grad:
                leaves.append((ns[f"{var}_t"], ref))
            return ns[f"{var}_t"], ref, f"{var}_t"
        if isinstance(x, (list, tuple)) and any(isinstance(i, T) for i in x):
            parts = [make(i) for i in x]
            names = "[" + ", ".join(p[2] for p in parts) + "]"
            return [p[0] for p in parts], [p[1] for p in parts], names
        return x, x, repr(x)

    made = [make(a) for a in sample.args]
    kw = [f"{k}={v!r}" for k, v in sample.kwargs.items()]
    call = f"out = ndl.ops.{op_name}(" + ", ".join([m[2] for m in made] + kw) + ")"
    return Built([m[0] for m in made], [m[1] for m in made], code, call, leaves, described)


def ids(samples: Sequence[SampleInput]) -> list[str]:
    """Unique, readable test ids for samples (their ``desc``, numbered on clashes)."""
    out, seen = [], {}
    for i, s in enumerate(samples):
        d = s.desc or f"s{i}"
        seen[d] = seen.get(d, 0) + 1
        out.append(d if seen[d] == 1 else f"{d}#{seen[d]}")
    return out
