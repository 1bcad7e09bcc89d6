"""Per-op overhead: ``a + b`` on tiny tensors, where the arithmetic costs nothing.

What is left is the framework: creating the Tensor, recording the graph node, the
NDArray bookkeeping and the kernel call. The report shows these in microseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ._common import Impl, assert_close, needle_train_step, record

pytestmark = pytest.mark.impls("needle", "torch")

SHAPE = (4,)


def tiny_operands(impl: Impl) -> tuple[Any, Any]:
    """``a`` and ``b`` of shape (4,) on ``impl``, both requiring gradients (PyTorch) or
    made as needle makes them (needle: a Tensor made from data requires a gradient)."""
    a_np = np.arange(4, dtype=np.float32)
    b_np = np.ones(4, dtype=np.float32)
    if impl.kind == "torch":
        import torch

        return torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    import needle

    return (needle.Tensor(a_np, device=impl.device), needle.Tensor(b_np, device=impl.device))


@pytest.mark.parametrize("grad", [True, False], ids=["graph", "no_grad"])
def bench_tiny_add(benchmark: Any, impl: Impl, grad: bool) -> None:
    a, b = tiny_operands(impl)
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


def bench_tiny_step(benchmark: Any, impl: Impl) -> None:
    """A whole training step of a 4-4-2 MLP on 2 examples: what a step costs beyond its
    kernels. needle is replayed through ``needle.compile`` (the report lists it as the
    needle row; there is no eager needle row here), PyTorch runs eagerly."""
    x_np = np.linspace(-1.0, 1.0, 8, dtype=np.float32).reshape(2, 4)
    y_np = np.array([0, 1])
    if impl.kind == "torch":
        import torch

        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        loss_fn = torch.nn.CrossEntropyLoss()
        x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)

        def run() -> float:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return float(loss.detach())
    else:
        import needle

        needle.manual_seed(0)
        model = needle.models.MLP(4, hidden=(4,), num_classes=2, device=impl.device)
        opt = needle.optim.SGD(model.parameters(), lr=0.1)
        loss_fn = needle.nn.SoftmaxLoss()
        x = needle.Tensor(x_np, device=impl.device, requires_grad=False)
        y = needle.Tensor(y_np.astype(np.float32), device=impl.device, requires_grad=False)

        step = needle.compile(needle_train_step(model, opt, loss_fn), state=(model, opt))

        for _ in range(3):  # warm-up, capture, one replay
            step(x, y)
        sync = impl.sync()

        def run() -> float:
            loss = step(x, y)
            sync()
            return float(loss.numpy())

    record(benchmark, impl, "overhead", "MLP 4-4-2 batch 2 train step (needle replayed)", unit="us")
    loss = benchmark(run)
    assert np.isfinite(loss) and loss > 0, f"tiny step on {impl.name}: loss {loss}"
