"""Op-level benchmarks: forward (with graph recording) and backward of Tensor ops.

These go through the whole stack (Tensor, Op, NDArray views, kernels), so they show the
Python overhead on top of the kernels. PyTorch CPU doing the same ops with autograd is
the outside peer. Forward results and gradients are checked against NumPy after timing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from ._common import Impl, assert_close, record, rng, rounds, size

pytestmark = pytest.mark.impls("needle", "torch")


@dataclass(frozen=True)
class OpCase:
    """One op to time: inputs, the op in needle and in torch, and NumPy references.

    ``grads(inputs, out_grad)`` gives the exact adjoint of every input; ``flops(fwd)`` the
    floating-point work of the forward (``fwd=True``) or backward pass, where it matters.
    """

    name: str
    shapes: tuple[tuple[int, ...], ...]
    needle: Callable[..., Any]
    torch: Callable[..., Any]
    forward: Callable[..., np.ndarray]
    grads: Callable[..., list[np.ndarray]]
    flops: Callable[[bool], float | None] = lambda fwd: None


def _needle_ops() -> Any:
    import needle

    return needle


M = size(512, 9)
E = size(1024, 13)  # element-wise cases work on E x E


def _cases() -> list[OpCase]:
    nd = _needle_ops
    cases = [
        OpCase(
            f"matmul {M}x{M} @ {M}x{M}",
            ((M, M), (M, M)),
            lambda a, b: nd().matmul(a, b),
            lambda a, b: a @ b,
            lambda a, b: a @ b,
            lambda a, b, g: [g @ b.T, a.T @ g],
            lambda fwd: (2.0 if fwd else 4.0) * M**3,
        ),
        OpCase(
            f"add broadcast {E}x{E} + {E}",
            ((E, E), (E,)),
            lambda a, b: a + nd().broadcast_to(b, a.shape),
            lambda a, b: a + b,
            lambda a, b: a + b,
            lambda a, b, g: [g, g.sum(axis=0)],
        ),
        OpCase(
            f"summation axis=1 {E}x{E}",
            ((E, E),),
            lambda a: nd().summation(a, axes=(1,)),
            lambda a: a.sum(dim=1),
            lambda a: a.sum(axis=1),
            lambda a, g: [np.broadcast_to(g[:, None], a.shape)],
        ),
        OpCase(
            f"tanh {E}x{E}",
            ((E, E),),
            lambda a: nd().tanh(a),
            lambda a: a.tanh(),
            np.tanh,
            lambda a, g: [g * (1 - np.tanh(a) ** 2)],
        ),
        OpCase(
            f"relu {E}x{E}",
            ((E, E),),
            lambda a: nd().relu(a),
            lambda a: a.relu(),
            lambda a: np.maximum(a, 0),
            lambda a, g: [g * (a > 0)],
        ),
    ]
    return cases


CASES = _cases()


def _inputs(case: OpCase) -> list[np.ndarray]:
    return [rng(i).standard_normal(s, dtype=np.float32) for i, s in enumerate(case.shapes)]


def _make(impl: Impl, arrays: list[np.ndarray]) -> list[Any]:
    if impl.kind == "torch":
        import torch

        return [torch.tensor(a, requires_grad=True) for a in arrays]
    import needle

    return [needle.Tensor(a, device=impl.device, dtype="float32") for a in arrays]


def _as_numpy(t: Any) -> np.ndarray:
    """A NumPy copy of a needle or torch tensor (both have ``detach`` and ``numpy``)."""
    return t.detach().numpy()


def _forward(impl: Impl, case: OpCase) -> Callable[..., Any]:
    return case.torch if impl.kind == "torch" else case.needle


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name.split(" ")[0])
def bench_forward(benchmark: Any, impl: Impl, case: OpCase) -> None:
    arrays = _inputs(case)
    xs = _make(impl, arrays)
    fn, sync = _forward(impl, case), impl.sync()

    def run() -> Any:
        y = fn(*xs)
        sync()
        return y

    record(benchmark, impl, "ops", f"{case.name} forward", flops=case.flops(True))
    y = benchmark(run)
    expected = case.forward(*[a.astype(np.float64) for a in arrays])
    assert_close(
        _as_numpy(y), expected, f"{case.name} forward on {impl.name}", rtol=1e-3, atol=1e-3
    )


@dataclass
class BackwardPass:
    """A timed backward pass of ``case`` on ``impl``: ``setup()`` clears the inputs'
    gradients and runs the forward (not timed) and returns ``run``'s arguments; ``run(y)``
    is the backward pass. ``arrays``/``xs`` are the inputs, ``g_np`` the output gradient."""

    arrays: list[np.ndarray]
    xs: list[Any]
    g_np: np.ndarray
    setup: Callable[[], tuple[Any, ...]]
    run: Callable[[Any], None]


def backward_pass(impl: Impl, case: OpCase) -> BackwardPass:
    arrays = _inputs(case)
    xs = _make(impl, arrays)
    fn, sync = _forward(impl, case), impl.sync()
    out_shape = case.forward(*arrays).shape
    g_np = rng(99).standard_normal(out_shape, dtype=np.float32)
    (g,) = _make(impl, [g_np])

    def setup() -> tuple[Any, ...]:
        for x in xs:
            x.grad = None
        return (fn(*xs),)

    def run(y: Any) -> None:
        y.backward(g)
        sync()

    return BackwardPass(arrays, xs, g_np, setup, run)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name.split(" ")[0])
def bench_backward(benchmark: Any, impl: Impl, case: OpCase) -> None:
    bp = backward_pass(impl, case)
    arrays, xs, g_np = bp.arrays, bp.xs, bp.g_np
    record(benchmark, impl, "ops", f"{case.name} backward", flops=case.flops(False))
    # 60 timed backward passes for everyone (20 left the 3 ms matmul's minimum to chance:
    # its ratio read 1.03-1.43 in runs minutes apart)
    benchmark.pedantic(
        bp.run,
        setup=lambda: (bp.setup(), {}),
        rounds=rounds(60),
        warmup_rounds=0 if rounds(2) == 1 else 2,
    )
    expected = case.grads(*[a.astype(np.float64) for a in arrays], g_np.astype(np.float64))
    for i, (x, want) in enumerate(zip(xs, expected)):
        assert x.grad is not None, f"{case.name} backward on {impl.name}: input {i} got no grad"
        assert_close(
            _as_numpy(x.grad),
            want,
            f"{case.name} grad {i} on {impl.name}",
            rtol=1e-3,
            atol=1e-3 * np.sqrt(max(case.shapes[0])),
        )


# --- convolution, once needle has it ------------------------------------------------------
CONV = size(dict(n=32, h=32, c_in=32, c_out=32, k=3), dict(n=2, h=6, c_in=3, c_out=4, k=3))


def _conv_or_skip(impl: Impl) -> None:
    import needle

    if not hasattr(needle.ops, "conv"):
        pytest.skip("needle.ops.conv does not exist yet (nothing to compare the peer with)")


@pytest.mark.parametrize("direction", ["forward", "backward"])
def bench_conv(benchmark: Any, impl: Impl, direction: str) -> None:
    """needle.ops.conv (NHWC input, KKIO weights, padding k//2) against torch's conv2d."""
    _conv_or_skip(impl)
    n, h, c_in, c_out, k = (CONV[key] for key in ("n", "h", "c_in", "c_out", "k"))
    x_np = rng(11).standard_normal((n, h, h, c_in), dtype=np.float32)
    w_np = rng(12).standard_normal((k, k, c_in, c_out), dtype=np.float32)
    if impl.kind == "torch":
        import torch

        x = torch.tensor(x_np.transpose(0, 3, 1, 2).copy(), requires_grad=True)
        w = torch.tensor(w_np.transpose(3, 2, 0, 1).copy(), requires_grad=True)

        def fn() -> Any:
            return torch.nn.functional.conv2d(x, w, padding=k // 2)

        def to_nhwc(t: Any) -> np.ndarray:
            return t.detach().numpy().transpose(0, 2, 3, 1)
    else:
        import needle

        x, w = _make(impl, [x_np, w_np])

        def fn() -> Any:
            return needle.ops.conv(x, w, stride=1, padding=k // 2)

        def to_nhwc(t: Any) -> np.ndarray:
            return t.numpy()

    sync = impl.sync()
    flops = 2.0 * n * h * h * k * k * c_in * c_out
    case = f"conv {n}x{h}x{h}x{c_in} k={k} c_out={c_out} {direction}"
    record(benchmark, impl, "ops", case, flops=flops if direction == "forward" else 2 * flops)
    if direction == "forward":

        def run() -> Any:
            y = fn()
            sync()
            return y

        y = benchmark(run)
    else:
        y = fn()
        (g,) = (
            [__import__("torch").ones_like(y)]
            if impl.kind == "torch"
            else _make(impl, [np.ones(y.shape, dtype=np.float32)])
        )

        def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
            x.grad = w.grad = None
            return (fn(),), {}

        def back(out: Any) -> None:
            out.backward(g)
            sync()

        benchmark.pedantic(
            back, setup=setup, rounds=rounds(10), warmup_rounds=0 if rounds(2) == 1 else 1
        )
    padded = np.pad(x_np.astype(np.float64), ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    expected = np.tensordot(windows, w_np.astype(np.float64), axes=([4, 5, 3], [0, 1, 2]))
    assert_close(
        to_nhwc(y),
        expected,
        f"conv forward on {impl.name}",
        rtol=1e-3,
        atol=1e-3 * np.sqrt(k * k * c_in),
    )
