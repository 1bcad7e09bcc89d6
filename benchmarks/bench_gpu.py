"""GPU benchmarks: the ``cuda`` needle backend against PyTorch CUDA (issue 6).

Three cases, each timed for ``needle-cuda`` and for ``torch-cuda`` (PyTorch on the same
GPU, the outside peer):

* float32 matmul at n=4096 into a preallocated output (``flops = 2n³``);
* element-wise add of 64M float32 elements into a preallocated output
  (``bytes = 3 · 4 · n``: two reads and one write);
* one ResNet9 training step at batch 128 (forward, loss, backward, SGD), the same case as
  ``bench_models.py``'s, with the model and batch on the GPU.

Every timed call ends with a synchronization (needle: the device's ``synchronize`` kernel;
PyTorch: ``torch.cuda.synchronize()``), so the time is the GPU's work and not the launch.
Each case is warmed up before timing: the first call compiles needle's kernels (NVRTC) and
sets up cuBLAS/cuDNN; that first call's time is kept in ``extra_info["first_call_s"]``.
PyTorch's TF32 modes are switched off so both sides do real float32 arithmetic.

Rows record ``device="cuda"`` and the GPU's name, so ``python -m benchmarks.report``
gives GFLOP/s and GB/s for them without the CPU's peak fractions. Where there is no usable
CUDA device (or the ``cuda`` backend, CuPy, or a CUDA build of PyTorch is missing) every
case is skipped with the reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from ._common import Impl, assert_close, record, rng, rounds, size

F32 = 4  # bytes per float32
N_MATMUL = size(4096, 64)
N_ADD = size(64 * 2**20, 1000)  # 64M float32 = 256 MiB per operand
WARMUP = 2  # untimed calls before timing (the first compiles kernels)
TORCH_DEVICE = "cuda"  # PyTorch's device (a test may point it at the CPU to check the glue)


# --- the two implementations ----------------------------------------------------------
def _needle_cuda() -> Impl:
    wanted = [b.strip() for b in os.environ.get("NEEDLE_BENCH_BACKENDS", "").split(",")]
    if any(wanted) and "cuda" not in wanted:
        return Impl("needle-cuda", "needle", "cuda", skip="NEEDLE_BENCH_BACKENDS excludes cuda")
    from needle.backends import list_backends

    backend = list_backends().get("cuda")
    if backend is None:
        return Impl(
            "needle-cuda",
            "needle",
            "cuda",
            skip="needle backend 'cuda' is not installed (pip install -e backends/cuda_backend)",
        )
    status = backend.status()
    if not status.usable:
        return Impl(
            "needle-cuda",
            "needle",
            "cuda",
            skip=f"needle backend 'cuda' is not usable: {status.reason}",
        )
    return Impl("needle-cuda", "needle", "cuda")


def _torch_cuda() -> Impl:
    try:
        import torch
    except ImportError:
        return Impl("torch-cuda", "torch", skip="PyTorch is not installed")
    if not torch.cuda.is_available():
        return Impl(
            "torch-cuda",
            "torch",
            skip=f"PyTorch {torch.__version__} has no usable CUDA device "
            f"(torch.cuda.is_available() is False; torch.version.cuda={torch.version.cuda})",
        )
    return Impl("torch-cuda", "torch")


def _params() -> list[Any]:
    return [
        pytest.param(i, id=i.name, marks=[pytest.mark.skip(reason=i.skip)] if i.skip else [])
        for i in (_needle_cuda(), _torch_cuda())
    ]


pytestmark = pytest.mark.parametrize("gpu", _params())


@pytest.fixture(autouse=True)
def _no_tf32() -> Iterator[None]:
    """Real float32 in PyTorch (cuBLAS and cuDNN would otherwise use TF32 for some ops)."""
    try:
        import torch
    except ImportError:
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# --- helpers --------------------------------------------------------------------------
def _gpu_name(gpu: Impl) -> str:
    try:
        if gpu.kind == "torch":
            import torch

            return torch.cuda.get_device_name(0)
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(gpu.device.index)
        name = props["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception as exc:  # the name is for the report only
        return f"? ({exc})"


def _sync(gpu: Impl) -> Callable[[], None]:
    if gpu.kind == "torch":
        import torch

        return torch.cuda.synchronize
    if not gpu.device.has_kernel("synchronize"):
        pytest.fail("needle backend 'cuda' has no synchronize kernel: GPU timings would be wrong")
    return gpu.kernels.synchronize


def _to_gpu(gpu: Impl, array: np.ndarray) -> Any:
    array = np.ascontiguousarray(array, dtype=np.float32)
    if gpu.kind == "torch":
        import torch

        return torch.from_numpy(array).to(TORCH_DEVICE)
    handle = gpu.kernels.alloc(array.size, "float32")
    gpu.kernels.from_numpy(array.reshape(-1), handle)
    return handle


def _empty(gpu: Impl, shape: tuple[int, ...]) -> Any:
    if gpu.kind == "torch":
        import torch

        return torch.empty(shape, dtype=torch.float32, device=TORCH_DEVICE)
    return gpu.kernels.alloc(int(np.prod(shape)), "float32")


def _read(gpu: Impl, handle: Any, shape: tuple[int, ...]) -> np.ndarray:
    if gpu.kind == "torch":
        return handle.cpu().numpy().reshape(shape)
    strides = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
    return gpu.kernels.to_numpy(handle, shape, strides, 0)


def _warm_up(run: Callable[[], Any], calls: int = WARMUP) -> float:
    """Call ``run`` ``calls`` times untimed; return the first call's time in seconds."""
    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    for _ in range(calls - 1):
        run()
    return first


def _record(benchmark: Any, gpu: Impl, case: str, first: float, **work: Any) -> None:
    record(
        benchmark,
        gpu,
        "gpu",
        case,
        device="cuda",
        gpu=_gpu_name(gpu),
        first_call_s=round(first, 6),
        **work,
    )


# --- the cases ------------------------------------------------------------------------
def bench_gpu_matmul(benchmark: Any, gpu: Impl) -> None:
    n = N_MATMUL
    a_np = rng(1).standard_normal((n, n), dtype=np.float32)
    b_np = rng(2).standard_normal((n, n), dtype=np.float32)
    a, b, out = _to_gpu(gpu, a_np), _to_gpu(gpu, b_np), _empty(gpu, (n, n))
    sync = _sync(gpu)
    if gpu.kind == "torch":
        import torch

        a, b = a.reshape(n, n), b.reshape(n, n)

        def run() -> None:
            torch.matmul(a, b, out=out)
            sync()
    else:
        matmul = gpu.kernels.matmul

        def run() -> None:
            matmul(a, b, out, n, n, n)
            sync()

    first = _warm_up(run)
    _record(benchmark, gpu, f"matmul float32 n={n}", first, flops=2.0 * n**3)
    benchmark(run)
    # Check some rows against float64 on the CPU (all n rows would take seconds there).
    k = min(n, 16)
    expected = a_np[:k].astype(np.float64) @ b_np.astype(np.float64)
    assert_close(
        _read(gpu, out, (n, n))[:k],
        expected,
        f"matmul n={n} on {gpu.name}",
        rtol=1e-3,
        atol=1e-3 * np.sqrt(n),
    )


def bench_gpu_ewise_add(benchmark: Any, gpu: Impl) -> None:
    n = N_ADD
    a_np = rng(3).random(n, dtype=np.float32)
    b_np = rng(4).random(n, dtype=np.float32)
    a, b, out = _to_gpu(gpu, a_np), _to_gpu(gpu, b_np), _empty(gpu, (n,))
    sync = _sync(gpu)
    if gpu.kind == "torch":
        import torch

        def run() -> None:
            torch.add(a, b, out=out)
            sync()
    else:
        add = gpu.kernels.ewise_add

        def run() -> None:
            add(a, b, out)
            sync()

    first = _warm_up(run)
    _record(benchmark, gpu, f"ewise_add float32 n={n}", first, nbytes=3.0 * n * F32)
    benchmark(run)
    assert_close(_read(gpu, out, (n,)), a_np + b_np, f"ewise_add on {gpu.name}")


def _resnet9_case() -> Any:
    from .bench_models import CASES

    return next(c for c in CASES if c.attr == "ResNet9")


def _torch_cuda_step(case: Any, x_np: np.ndarray, y_np: np.ndarray) -> Callable[[], float]:
    import torch

    torch.manual_seed(0)
    model = case.torch_build().to(TORCH_DEVICE)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.tensor(x_np, device=TORCH_DEVICE)
    y = torch.tensor(y_np.astype(np.int64), device=TORCH_DEVICE)

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        return loss.item()

    return step


def bench_gpu_resnet9_train_step(
    benchmark: Any, gpu: Impl, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .bench_models import _needle_step

    case = _resnet9_case()
    x_np, y_np = case.batch()
    if gpu.kind == "torch":
        step = _torch_cuda_step(case, x_np, y_np)
    else:
        # Anything the model builds without an explicit device lands on the GPU.
        monkeypatch.setitem(os.environ, "NEEDLE_BACKEND", "cuda")
        step = _needle_step(gpu, case, x_np, y_np)  # synchronizes at the end of each step
    first = _warm_up(step)
    _record(benchmark, gpu, f"{case.name} train step", first, flops=case.flops)
    loss = benchmark.pedantic(step, rounds=rounds(5), warmup_rounds=0)
    assert np.isfinite(loss) and loss > 0, f"{case.name} on {gpu.name}: loss {loss}"
