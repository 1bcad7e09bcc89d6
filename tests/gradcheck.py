"""Central finite-difference gradient checks for tests (float64)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import needle as ndl
import numpy as np


def numeric_grads(
    f: Callable[..., ndl.Tensor],
    inputs: list[np.ndarray],
    eps: float = 1e-6,
    device: Any = None,
    **kwargs: Any,
) -> list[np.ndarray]:
    """d sum(f(*inputs) * w) / d inputs by central differences, w a fixed random weight."""

    def scalar(arrays: list[np.ndarray]) -> float:
        ts = [ndl.Tensor(a, dtype="float64", device=device) for a in arrays]
        out = f(*ts, **kwargs).numpy()
        return float((out * _weights(out.shape)).sum())

    grads = []
    for i, x in enumerate(inputs):
        g = np.zeros_like(x, dtype=np.float64)
        for j in range(x.size):
            plus = [a.copy() for a in inputs]
            minus = [a.copy() for a in inputs]
            plus[i].reshape(-1)[j] += eps
            minus[i].reshape(-1)[j] -= eps
            g.reshape(-1)[j] = (scalar(plus) - scalar(minus)) / (2 * eps)
        grads.append(g)
    return grads


def _weights(shape: tuple[int, ...]) -> np.ndarray:
    # A fixed, non-uniform output weighting so that every output element matters.
    n = int(np.prod(shape)) if shape else 1
    return (np.arange(n, dtype=np.float64).reshape(shape) % 7 + 1.0) / 7.0


def analytic_grads(
    f: Callable[..., ndl.Tensor], inputs: list[np.ndarray], device: Any = None, **kwargs: Any
) -> list[np.ndarray]:
    """The same gradients through needle's backward."""
    ts = [ndl.Tensor(a, dtype="float64", device=device, requires_grad=True) for a in inputs]
    out = f(*ts, **kwargs)
    w = ndl.Tensor(_weights(out.shape), dtype="float64", device=out.device, requires_grad=False)
    (out * w).sum().backward()
    return [t.grad.numpy() if t.grad is not None else np.zeros(t.shape) for t in ts]


def check_gradients(
    f: Callable[..., ndl.Tensor],
    *inputs: np.ndarray,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    device: Any = None,
    **kwargs: Any,
) -> None:
    """Assert needle's gradients of ``f`` match central finite differences."""
    arrays = [np.asarray(x, dtype=np.float64) for x in inputs]
    num = numeric_grads(f, arrays, device=device, **kwargs)
    ana = analytic_grads(f, arrays, device=device, **kwargs)
    for i, (n, a) in enumerate(zip(num, ana)):
        np.testing.assert_allclose(
            a,
            n,
            rtol=rtol,
            atol=atol,
            err_msg=f"gradient of input {i} of {getattr(f, '__name__', f)}",
        )


def fused_test_backends() -> list[str]:
    """The ``device_for`` names a fused-op test runs on: ``numpy`` and, where installed,
    ``cpp``, each also as ``-composed``."""
    names = ["numpy"] + (["cpp"] if "cpp" in {d.name for d in ndl.all_devices()} else [])
    return [v for n in names for v in (n, f"{n}-composed")]


def device_for(name: str, monkeypatch: Any) -> Any:
    """The device a fused-op test parameter names: ``"cpp"``, or ``"cpp-composed"`` for the
    same backend with every optional kernel hidden (the NDArray compositions run)."""
    dev = ndl.device(name.split("-")[0])
    if name.endswith("-composed"):
        monkeypatch.setattr(dev, "has_kernel", lambda kernel: False)
    return dev
