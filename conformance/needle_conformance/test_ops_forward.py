"""Area ``ops_forward``: every op record, every sample, every dtype, vs NumPy in float64."""

from __future__ import annotations

from typing import Any

import pytest

from . import _state
from ._ops_utils import call, describe, op_sample_params, outputs, reference, skip_unless_supported
from .assertions import assert_close, fail
from .opdb import OpInfo, SampleInput, build

pytestmark = pytest.mark.ops_forward


@pytest.mark.parametrize("dtype", _state.dtypes())
@pytest.mark.parametrize(("rec", "sample"), op_sample_params())
def test_forward(needle_device: Any, rec: OpInfo, sample: SampleInput, dtype: str) -> None:
    skip_unless_supported(rec, sample, dtype)
    rec.resolve()
    built = build(rec.name, sample, needle_device, dtype)
    repro = built.repro()
    what = describe(rec, sample, built, dtype, "forward")
    try:
        result = call(rec, built, sample)
    except Exception as exc:
        fail(what, f"raised {type(exc).__name__}: {exc}", repro)
    got, expected = outputs(result), reference(rec, built, sample)
    if len(got) != len(expected):
        fail(what, f"returned {len(got)} tensors, expected {len(expected)}", repro)
    want_dtype = sample.args[1] if rec.out_dtype == "arg1" else dtype
    rtol, atol = rec.tolerance(want_dtype)
    for i, (g, e) in enumerate(zip(got, expected)):
        label = what if len(got) == 1 else f"{what} [output {i}]"
        if g.dtype != want_dtype:
            fail(label, f"result dtype {g.dtype}, expected {want_dtype}", repro)
        if g.device != needle_device:
            fail(label, f"result on device {g.device}, expected {needle_device}", repro)
        assert_close(g.numpy(), e, rtol=rtol, atol=atol, what=label, repro=repro)


PLUMBING = {"make_tuple", "tuple_get_item"}  # exercised through split/stack/concatenate


def test_every_op_has_a_record() -> None:
    """A public function of ``needle.ops`` without a record (and not an alias) is a gap."""
    import inspect

    import needle

    from .opdb import OP_DB

    recorded = [getattr(needle.ops, r.name, None) for r in OP_DB]
    missing = sorted(
        name
        for name, fn in vars(needle.ops).items()
        if inspect.isfunction(fn)
        and not name.startswith("_")
        and name not in PLUMBING
        and not any(fn is r for r in recorded)
    )
    if missing:
        pytest.fail(
            "needle.ops functions with no record in the op database: " + ", ".join(missing),
            pytrace=False,
        )
