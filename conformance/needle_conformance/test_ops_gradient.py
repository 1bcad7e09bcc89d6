"""Area ``ops_gradient``: each differentiable op's gradient vs central finite differences.

Runs in float64. The finite differences are taken of the NumPy reference, so the
oracle is independent of the backend: ``grad(x) = d/dx sum(op(x) * v)`` for a fixed
random cotangent ``v``, computed by needle with ``backward`` and by NumPy with
``(f(x + h e_i) - f(x - h e_i)) / 2h`` for each element ``i``.
"""

from __future__ import annotations

from typing import Any

import needle
import numpy as np
import pytest

from . import _state
from ._ops_utils import call, describe, op_sample_params, outputs, reference, skip_unless_supported
from .assertions import assert_close, fail
from .opdb import OpInfo, SampleInput, build

pytestmark = pytest.mark.ops_gradient
STEP = 1e-6


def _cotangents(shapes: list[tuple[int, ...]]) -> list[np.ndarray]:
    rng = np.random.default_rng(2024)
    return [rng.standard_normal(s) for s in shapes]


def _objective(rec: OpInfo, built: Any, sample: SampleInput, vs: list[np.ndarray]) -> float:
    return float(sum(np.sum(o * v) for o, v in zip(reference(rec, built, sample), vs)))


def numeric_gradient(
    rec: OpInfo, built: Any, sample: SampleInput, vs: list[np.ndarray], x: np.ndarray
) -> np.ndarray:
    """Central differences of ``sum(ref(...) * v)`` with respect to array ``x`` (in place)."""
    grad = np.zeros(x.shape)
    flat = x.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + STEP
        plus = _objective(rec, built, sample, vs)
        flat[i] = keep - STEP
        minus = _objective(rec, built, sample, vs)
        flat[i] = keep
        grad.reshape(-1)[i] = (plus - minus) / (2 * STEP)
    return grad


@pytest.mark.parametrize(("rec", "sample"), op_sample_params(differentiable=True))
def test_gradient(needle_device: Any, rec: OpInfo, sample: SampleInput) -> None:
    dtype = "float64"
    if not _state.has_float64():
        pytest.skip("gradient checks need float64, which this backend does not support")
    skip_unless_supported(rec, sample, dtype)
    rec.resolve()
    built = build(rec.name, sample, needle_device, dtype, requires_grad=True)
    if not built.leaves:
        pytest.skip("no differentiable tensor input in this sample")
    what = describe(rec, sample, built, dtype, "gradient")
    outs = outputs(call(rec, built, sample))
    vs = _cotangents([o.shape for o in outs])
    code = [
        f"v{i} = np.random.default_rng(2024).standard_normal({o.shape})" for i, o in enumerate(outs)
    ]
    if len(outs) == 1:
        # the cotangent has the output's dtype (astype's output differs from its input's)
        out_dtype = outs[0].dtype
        outs[0].backward(needle.Tensor(vs[0], device=needle_device, dtype=out_dtype))
        code.append(f"out.backward(ndl.Tensor(v0, device=dev, dtype={out_dtype!r}))")
    else:  # a tuple op: backpropagate sum_i sum(out_i * v_i)
        loss = None
        for o, v in zip(outs, vs):
            term = needle.ops.summation(
                o * needle.Tensor(v, device=needle_device, dtype=dtype, requires_grad=False)
            )
            loss = term if loss is None else loss + term
        assert loss is not None
        loss.backward()
        code.append(
            "sum(ndl.ops.summation(o * ndl.Tensor(v, device=dev, dtype='float64', "
            "requires_grad=False)) for o, v in zip(out, [v0, ...])).backward()"
        )
    repro = built.repro() + "\n" + "\n".join(code) + "\nprint(x0_t.grad)"
    rtol, atol = rec.grad_tolerance
    for n, (leaf, ref_array) in enumerate(built.leaves):
        expected = numeric_gradient(rec, built, sample, vs, ref_array)
        if leaf.grad is None:
            fail(what, f"leaf {n} got no gradient (grad is None)", repro)
        if leaf.grad.dtype != dtype:
            fail(what, f"leaf {n}: gradient dtype {leaf.grad.dtype}, expected {dtype}", repro)
        assert_close(
            leaf.grad.numpy(),
            expected,
            rtol=rtol,
            atol=atol,
            repro=repro,
            what=f"{what} [gradient of tensor input {n}]",
        )
