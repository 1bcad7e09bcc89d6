"""What every benchmark suite shares: implementations, thread counts, sizes, recording.

An *implementation* (``Impl``) is one thing being timed: a needle backend (``needle-numpy``,
``needle-cpp``...) or an outside peer measured in the same run (``numpy`` at the kernel
level, ``torch`` at the op and model level). ``conftest.py`` parametrizes the ``impl``
fixture over them.

Thread counts. Everyone gets the same number of threads, ``THREADS``: the value of
``NEEDLE_BENCH_THREADS``, else ``OMP_NUM_THREADS``, else every core. It is applied as
``OMP_NUM_THREADS`` (the C++ backend's OpenMP and PyTorch's, set before either loads),
``OPENBLAS_NUM_THREADS``/``MKL_NUM_THREADS`` plus ``threadpoolctl`` where installed (NumPy's
BLAS, already loaded), and ``torch.set_num_threads``.

Quick mode (``--bench-quick`` or ``NEEDLE_BENCH_QUICK=1``) shrinks every size so the whole
suite runs in seconds as a correctness smoke check (``--benchmark-disable``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _thread_count() -> int:
    for var in ("NEEDLE_BENCH_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


THREADS = _thread_count()
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_blas_limits: Any = None


def apply_thread_limits() -> None:
    """Give NumPy's BLAS, OpenMP (C++ backend) and PyTorch ``THREADS`` threads each."""
    global _blas_limits
    for var in _THREAD_VARS:
        os.environ[var] = str(THREADS)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        _blas_limits = threadpool_limits(limits=THREADS)


def quick() -> bool:
    """Whether sizes are shrunk for a smoke run."""
    return os.environ.get("NEEDLE_BENCH_QUICK", "") not in ("", "0")


def size(full: Any, small: Any) -> Any:
    """``full`` in a real run, ``small`` in quick mode."""
    return small if quick() else full


def rounds(full: int) -> int:
    """Rounds for ``benchmark.pedantic`` (``NEEDLE_BENCH_ROUNDS`` overrides; 1 when quick)."""
    if quick():
        return 1
    value = os.environ.get("NEEDLE_BENCH_ROUNDS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else full


def needle_train_step(model: Any, opt: Any, loss_fn: Any) -> Callable[[Any, Any], Any]:
    """``update(x, y)``: one needle training step (reset gradients, forward, loss on the
    first output where the model returns a tuple, backward, optimizer step); returns the
    loss Tensor. What the model benchmarks and tools time, eagerly or through
    ``needle.compile(update, state=(model, opt))``."""

    def update(x: Any, y: Any) -> Any:
        opt.reset_grad()
        out = model(x)
        loss = loss_fn(out[0] if isinstance(out, tuple) else out, y)
        loss.backward()
        opt.step()
        return loss

    return update


# --- implementations ------------------------------------------------------------------
@dataclass
class Impl:
    """One implementation under test.

    Attributes:
        name: the id shown in reports, e.g. ``needle-cpp``, ``numpy``, ``torch``.
        kind: ``"needle"``, ``"numpy"`` or ``"torch"``.
        backend: the needle backend name (needle implementations only).
        skip: why this implementation cannot run here ("" when it can).
    """

    name: str
    kind: str
    backend: str = ""
    skip: str = ""
    _device: Any = field(default=None, repr=False)

    @property
    def device(self) -> Any:
        """The needle ``Device`` (needle implementations only)."""
        if self._device is None:
            import needle

            self._device = needle.device(self.backend)
        return self._device

    @property
    def kernels(self) -> Any:
        return self.device.kernels

    def sync(self) -> Callable[[], None]:
        """A function that waits for queued work (a no-op where nothing is queued)."""
        if self.kind == "needle" and self.device.has_kernel("synchronize"):
            return self.kernels.synchronize
        return _nothing


def _nothing() -> None:
    return None


def needle_impls() -> list[Impl]:
    """Every installed needle backend (``NEEDLE_BENCH_BACKENDS=a,b`` restricts the list).

    A backend that is installed but not usable here (CUDA without a GPU) is kept, with
    the reason, so its benchmarks show up as skipped rather than silently missing.
    """
    from needle.backends import list_backends

    wanted = [b for b in os.environ.get("NEEDLE_BENCH_BACKENDS", "").split(",") if b.strip()]
    names = sorted(list_backends(), key=_order)
    return [backend_impl(name) for name in names if not wanted or name in wanted]


def backend_impl(name: str) -> Impl:
    """needle on backend ``name``, skipped with the reason where it is not installed or
    not usable here."""
    from needle.backends import list_backends

    backend = list_backends().get(name)
    if backend is None:
        reason = f"needle backend {name!r} is not installed"
    else:
        status = backend.status()
        reason = "" if status.usable else f"needle backend {name!r} is not usable: {status.reason}"
    return Impl(f"needle-{name}", "needle", backend=name, skip=reason)


def _order(name: str) -> tuple[int, str]:
    return ({"numpy": 0, "cpp": 1, "cuda": 2}.get(name, 3), name)


def torch_impl() -> Impl:
    """The PyTorch CPU peer (skipped with a reason where torch is not installed)."""
    try:
        import torch
    except ImportError:
        return Impl("torch", "torch", skip="PyTorch is not installed (pip install torch==2.13.0)")
    torch.set_num_threads(THREADS)
    return Impl("torch", "torch")


def numpy_impl() -> Impl:
    """Plain NumPy as an outside peer at the kernel level."""
    return Impl("numpy", "numpy")


def impls_for(kinds: tuple[str, ...]) -> list[Impl]:
    """The implementations for a suite that measures ``kinds`` (see the ``impls`` marker)."""
    out: list[Impl] = []
    if "needle" in kinds:
        out += needle_impls()
    if "numpy" in kinds:
        out.append(numpy_impl())
    if "torch" in kinds:
        out.append(torch_impl())
    return out


# --- recording ------------------------------------------------------------------------
def record(
    benchmark: Any,
    impl: Impl,
    suite: str,
    case: str,
    *,
    flops: float | None = None,
    nbytes: float | None = None,
    unit: str = "",
    **extra: Any,
) -> None:
    """Name the benchmark for the report: group, implementation, work done per call.

    ``flops`` (floating-point operations) and ``nbytes`` (bytes moved to and from
    memory) per call let the report compute GFLOP/s and GB/s.
    """
    benchmark.group = f"{suite}: {case}"
    info = benchmark.extra_info
    info.update(suite=suite, case=case, impl=impl.name, kind=impl.kind, threads=THREADS)
    if flops is not None:
        info["flops"] = float(flops)
    if nbytes is not None:
        info["bytes"] = float(nbytes)
    if unit:
        info["unit"] = unit
    info.update(extra)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def assert_close(actual: Any, expected: Any, what: str, rtol: float = 1e-4, atol: float = 1e-4):
    """Check a benchmark's result against NumPy, naming the case on failure."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)
