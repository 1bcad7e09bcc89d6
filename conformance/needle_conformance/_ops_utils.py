"""Shared steps of the op-database tests: parametrization, calling, describing."""

from __future__ import annotations

from typing import Any

import needle
import numpy as np
import pytest

from . import _state
from .opdb import OP_DB, Built, OpInfo, SampleInput, T, ids


def op_sample_params(*, differentiable: bool = False, errors: bool = False) -> list[Any]:
    """``pytest.param(record, sample)`` for every record and sample (or error input)."""
    out = []
    for rec in OP_DB:
        if differentiable and not rec.differentiable:
            continue
        items = rec.errors() if errors else rec.samples()
        samples = [e.sample for e in items] if errors else items
        for item, sid in zip(items, ids(samples)):
            if differentiable and not item.grad:
                continue
            out.append(pytest.param(rec, item, id=f"{rec.name}-{sid}"))
    return out


def needed_dtypes(rec: OpInfo, sample: SampleInput) -> set[str]:
    """The dtypes a sample needs besides the one under test (forced T dtypes, astype's)."""
    need: set[str] = set()

    def walk(x: Any) -> None:
        if isinstance(x, T) and x.dtype:
            need.add(x.dtype)
        elif isinstance(x, (list, tuple)):
            for i in x:
                walk(i)

    walk(sample.args)
    if rec.out_dtype == "arg1":
        need.add(sample.args[1])
    return need


def skip_unless_supported(rec: OpInfo, sample: SampleInput, dtype: str) -> None:
    if dtype not in rec.dtypes:
        pytest.skip(f"{rec.name} is not defined for {dtype}")
    missing = needed_dtypes(rec, sample) - set(_state.dtypes())
    if missing:
        pytest.skip(f"sample needs dtype(s) {sorted(missing)}, not tested on this backend")


def describe(rec: OpInfo, sample: SampleInput, built: Built, dtype: str, what: str) -> str:
    inputs = "; ".join(built.described) or "no tensor inputs"
    extra = f", kwargs {sample.kwargs}" if sample.kwargs else ""
    return f"op {rec.name} ({what}, sample {sample.desc!r}, {dtype}){extra}: {inputs}"


def call(rec: OpInfo, built: Built, sample: SampleInput) -> Any:
    return rec.resolve()(*built.args, **sample.kwargs)


def outputs(result: Any) -> list[Any]:
    """An op's result as a list of tensors (tuple ops give several)."""
    if isinstance(result, needle.TensorTuple):
        return list(result)
    return [result]


def reference(rec: OpInfo, built: Built, sample: SampleInput) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        out = rec.ref(*built.ref_args, **sample.kwargs)
    return (
        [np.asarray(o, dtype=np.float64) for o in out]
        if isinstance(out, list)
        else [np.asarray(out, dtype=np.float64)]
    )
