"""Area ``higher_order``: second derivatives through ``backward(create_graph=True)``.

For each composite ``f``, the first backward records the gradient ``g = df/dx`` as a
graph; the second differentiates ``sum(g * w)`` again, which gives the Hessian-vector
product ``H w``. Both are checked against closed forms evaluated with NumPy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import needle
import numpy as np
import pytest

from . import _state
from .assertions import assert_close

pytestmark = pytest.mark.higher_order


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class Case:
    """f(x) as needle code; the analytic gradient and Hessian-vector product in NumPy."""

    name: str
    expr: str  # a needle expression in x (and W, a constant-shape second input)
    grad: Callable[[np.ndarray, np.ndarray], np.ndarray]
    hvp: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    kind: str = "normal"


CASES = [
    Case("cube", "ndl.summation(x * x * x)", lambda x, W: 3 * x**2, lambda x, W, w: 6 * x * w),
    Case(
        "exp_sin",
        "ndl.summation(ndl.exp(x) * ndl.sin(x))",
        lambda x, W: np.exp(x) * (np.sin(x) + np.cos(x)),
        lambda x, W, w: w * 2 * np.exp(x) * np.cos(x),
    ),
    Case(
        "sigmoid",
        "ndl.summation(ndl.sigmoid(x))",
        lambda x, W: _sig(x) * (1 - _sig(x)),
        lambda x, W, w: w * _sig(x) * (1 - _sig(x)) * (1 - 2 * _sig(x)),
    ),
    Case(
        "log_div",
        "ndl.summation(ndl.log(x) / x)",
        lambda x, W: (1 - np.log(x)) / x**2,
        lambda x, W, w: w * (2 * np.log(x) - 3) / x**3,
        kind="positive",
    ),
    Case(
        "tanh_matmul",
        "ndl.summation(ndl.tanh(x @ W))",
        lambda x, W: (1 - np.tanh(x @ W) ** 2) @ W.T,
        # d/dx sum(((1 - t^2) W^T) * w) = (-2 t (1 - t^2) * (w W)) W^T, t = tanh(x W)
        lambda x, W, w: (-2 * np.tanh(x @ W) * (1 - np.tanh(x @ W) ** 2) * (w @ W)) @ W.T,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_second_order(needle_device: Any, case: Case) -> None:
    if not _state.has_float64():
        pytest.skip("second-order checks need float64, which this backend does not support")
    rng = np.random.default_rng(7)
    x_np = rng.uniform(0.5, 2.0, (3, 4)) if case.kind == "positive" else rng.standard_normal((3, 4))
    W_np = rng.standard_normal((4, 2))
    w_np = rng.standard_normal((3, 4))
    ns: dict[str, Any] = {"ndl": needle}
    x = needle.Tensor(x_np, device=needle_device, dtype="float64")
    ns["x"] = x
    ns["W"] = needle.Tensor(W_np, device=needle_device, dtype="float64", requires_grad=False)
    f = eval(case.expr, ns)  # the case's own expression, printed in the reproducer
    f.backward(create_graph=True)
    g = x.grad
    repro = "\n".join(
        [
            "import numpy as np",
            "import needle as ndl",
            "rng = np.random.default_rng(7)",
            "x_np = "
            + (
                "rng.uniform(0.5, 2.0, (3, 4))"
                if case.kind == "positive"
                else "rng.standard_normal((3, 4))"
            ),
            "W_np = rng.standard_normal((4, 2)); w_np = rng.standard_normal((3, 4))",
            f"x = ndl.Tensor(x_np, device={str(needle_device)!r}, dtype='float64')",
            f"W = ndl.Tensor(W_np, device={str(needle_device)!r}, dtype='float64', "
            "requires_grad=False)",
            f"f = {case.expr}",
            "f.backward(create_graph=True)",
            "g = x.grad; x.grad = None",
            "ndl.summation(g * ndl.Tensor(w_np, device=x.device, dtype='float64')).backward()",
            "print(g, x.grad)",
        ]
    )
    what = f"second order, f = {case.expr}, x float64 shape (3, 4) on {needle_device}"
    if g is None or not g.requires_grad:
        pytest.fail(
            f"{what}: backward(create_graph=True) left x.grad "
            f"{'None' if g is None else 'without a graph'}",
            pytrace=False,
        )
    assert_close(
        g.numpy(),
        case.grad(x_np, W_np),
        rtol=1e-9,
        atol=1e-10,
        repro=repro,
        what=f"{what}: first derivative",
    )
    x.grad = None
    needle.ops.summation(
        g * needle.Tensor(w_np, device=needle_device, dtype="float64", requires_grad=False)
    ).backward()
    assert_close(
        x.grad.numpy(),
        case.hvp(x_np, W_np, w_np),
        rtol=1e-8,
        atol=1e-10,
        repro=repro,
        what=f"{what}: Hessian-vector product",
    )
