"""Area ``errors``: every error input of every op record, and ops across devices.

An error must be a fitting built-in exception type with a message matching the
record's pattern, and must leave the inputs unchanged.
"""

from __future__ import annotations

from typing import Any

import needle
import numpy as np
import pytest

from . import _state
from ._ops_utils import call, describe, op_sample_params, skip_unless_supported
from .assertions import assert_close, assert_raises
from .opdb import ErrorInput, OpInfo, build

pytestmark = pytest.mark.errors


@pytest.mark.parametrize(("rec", "error"), op_sample_params(errors=True))
def test_error_input(needle_device: Any, rec: OpInfo, error: ErrorInput) -> None:
    dtype = _state.dtypes()[0]
    sample = error.sample
    skip_unless_supported(rec, sample, dtype)
    rec.resolve()
    built = build(rec.name, sample, needle_device, dtype)
    before = [leaf.numpy().copy() for leaf, _ in _tensors(built)]
    what = describe(rec, sample, built, dtype, f"error input, expecting {error.exc.__name__}")
    assert_raises(
        lambda: call(rec, built, sample), error.exc, error.match, what=what, repro=built.repro()
    )
    for (t, name), old in zip(_tensors(built), before):
        assert_close(
            t.numpy(),
            old,
            rtol=0,
            atol=0,
            repro=built.repro(),
            what=f"{what}: input {name} changed by the failed call",
        )


def _tensors(built: Any) -> list[tuple[Any, str]]:
    out = []
    for i, a in enumerate(built.args):
        for j, t in enumerate(a if isinstance(a, list) else [a]):
            if isinstance(t, needle.Tensor):
                out.append((t, f"argument {i}" + (f"[{j}]" if isinstance(a, list) else "")))
    return out


def _other_device(dev: Any) -> Any:
    """Another usable device, the NumPy backend's by preference (it is cheap to load)."""
    others = [d for d in needle.all_devices() if d != dev]
    others.sort(key=lambda d: d.name != "numpy")
    return others[0] if others else None


@pytest.mark.parametrize("op", ["add", "multiply", "matmul", "maximum", "where"])
def test_mixing_devices(needle_device: Any, op: str) -> None:
    """An op on tensors on two devices raises ValueError naming both devices."""
    other = _other_device(needle_device)
    if other is None:
        pytest.skip("no second usable backend or device is installed to mix with")
    fn = getattr(needle.ops, op, None)
    if fn is None:
        pytest.fail(f"needle.ops has no {op}", pytrace=False)
    dtype = _state.dtypes()[0]
    a = needle.Tensor(np.ones((2, 2)), device=needle_device, dtype=dtype)
    b = needle.Tensor(np.ones((2, 2)), device=other, dtype=dtype)
    args = (a, b) if op != "where" else (a, a, b)
    repro = "\n".join(
        [
            "import numpy as np",
            "import needle as ndl",
            f"a = ndl.Tensor(np.ones((2, 2)), device={str(needle_device)!r}, dtype={dtype!r})",
            f"b = ndl.Tensor(np.ones((2, 2)), device={str(other)!r}, dtype={dtype!r})",
            f"ndl.ops.{op}(" + ("a, b" if op != "where" else "a, a, b") + ")",
        ]
    )
    err = assert_raises(
        lambda: fn(*args),
        ValueError,
        "",
        repro=repro,
        what=f"op {op}: tensors on {needle_device} and {other}",
    )
    for d in (needle_device, other):
        if str(d) not in str(err):
            pytest.fail(f"op {op}: the error {str(err)!r} does not name device {d}", pytrace=False)
