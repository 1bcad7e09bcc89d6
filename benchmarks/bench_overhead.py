"""Per-op overhead: ``a + b`` on tiny tensors, where the arithmetic costs nothing.

What is left is the framework: creating the Tensor, recording the graph node, the
NDArray bookkeeping and the kernel call. The report shows these in microseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ._common import Impl, assert_close, record

pytestmark = pytest.mark.impls("needle", "torch")

SHAPE = (4,)


def _pair(impl: Impl) -> tuple[Any, Any]:
    a_np = np.arange(4, dtype=np.float32)
    b_np = np.ones(4, dtype=np.float32)
    if impl.kind == "torch":
        import torch

        return torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    import needle

    return (needle.Tensor(a_np, device=impl.device), needle.Tensor(b_np, device=impl.device))


@pytest.mark.parametrize("grad", [True, False], ids=["graph", "no_grad"])
def bench_tiny_add(benchmark: Any, impl: Impl, grad: bool) -> None:
    a, b = _pair(impl)
    if impl.kind == "torch":
        import torch

        no_grad = torch.no_grad
    else:
        import needle

        no_grad = needle.no_grad
    sync = impl.sync()

    if grad:

        def run() -> Any:
            y = a + b
            sync()
            return y
    else:

        def run() -> Any:
            with no_grad():
                y = a + b
            sync()
            return y

    what = "with graph recording" if grad else "under no_grad"
    record(benchmark, impl, "overhead", f"a + b, shape {SHAPE}, {what}", unit="us")
    y = benchmark(run)
    assert y.requires_grad is grad, f"a + b on {impl.name}: requires_grad is {y.requires_grad}"
    assert_close(y.detach().numpy(), np.arange(4) + 1.0, f"tiny add on {impl.name}")
