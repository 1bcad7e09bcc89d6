"""Kernel-level benchmarks: each backend's raw kernels on flat float32 buffers.

The output is preallocated (destination-passing style, as the contract has it), so these
time the kernel and not the allocator. Plain NumPy doing the same work into a
preallocated output (``out=``) is the outside peer. Each benchmark checks its result
against NumPy once timing is over, so a wrong kernel fails instead of looking fast.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ._common import Impl, assert_close, record, rng, size

pytestmark = pytest.mark.impls("needle", "numpy")

F32 = 4  # bytes per float32
MATMUL_SIZES = size([256, 1024, 2048], [8, 33])
N_EWISE = size(16 * 2**20, 1000)  # 16M float32 = 64 MiB per operand
N_SIDE = size(4096, 37)  # compact of a transposed / broadcast N_SIDE x N_SIDE view


def _buffer(impl: Impl, array: np.ndarray) -> Any:
    """``array`` (1-D, float32) as a buffer of ``impl``."""
    array = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    if impl.kind == "numpy":
        return array
    handle = impl.kernels.alloc(array.size, "float32")
    impl.kernels.from_numpy(array, handle)
    return handle


def _empty(impl: Impl, n: int) -> Any:
    if impl.kind == "numpy":
        return np.empty(n, dtype=np.float32)
    return impl.kernels.alloc(n, "float32")


def _read(impl: Impl, handle: Any, shape: tuple[int, ...]) -> np.ndarray:
    if impl.kind == "numpy":
        return handle.reshape(shape)
    strides = tuple(int(np.prod(shape[i + 1 :])) for i in range(len(shape)))
    return impl.kernels.to_numpy(handle, shape, strides, 0)


@pytest.mark.parametrize("n", MATMUL_SIZES, ids=lambda n: f"n={n}")
def bench_matmul(benchmark: Any, impl: Impl, n: int) -> None:
    a_np = rng(1).standard_normal((n, n), dtype=np.float32)
    b_np = rng(2).standard_normal((n, n), dtype=np.float32)
    a, b, out = _buffer(impl, a_np), _buffer(impl, b_np), _empty(impl, n * n)
    sync = impl.sync()
    if impl.kind == "numpy":
        a2, b2, o2 = a.reshape(n, n), b.reshape(n, n), out.reshape(n, n)

        def run() -> None:
            np.matmul(a2, b2, out=o2)
    else:
        matmul = impl.kernels.matmul

        def run() -> None:
            matmul(a, b, out, n, n, n)
            sync()

    record(
        benchmark,
        impl,
        "kernels",
        f"matmul float32 n={n}",
        flops=2.0 * n**3,
    )
    benchmark(run)
    expected = a_np.astype(np.float64) @ b_np.astype(np.float64)
    assert_close(
        _read(impl, out, (n, n)),
        expected,
        f"matmul n={n} on {impl.name}",
        rtol=1e-3,
        atol=1e-3 * np.sqrt(n),
    )


def bench_ewise_add(benchmark: Any, impl: Impl) -> None:
    n = N_EWISE
    a_np = rng(3).random(n, dtype=np.float32)
    b_np = rng(4).random(n, dtype=np.float32)
    a, b, out = _buffer(impl, a_np), _buffer(impl, b_np), _empty(impl, n)
    sync = impl.sync()
    if impl.kind == "numpy":

        def run() -> None:
            np.add(a, b, out=out)
    else:
        add = impl.kernels.ewise_add

        def run() -> None:
            add(a, b, out)
            sync()

    record(benchmark, impl, "kernels", f"ewise_add float32 n={n}", nbytes=3.0 * n * F32)
    benchmark(run)
    assert_close(_read(impl, out, (n,)), a_np + b_np, f"ewise_add on {impl.name}")


def bench_scalar_mul(benchmark: Any, impl: Impl) -> None:
    n = N_EWISE
    a_np = rng(5).random(n, dtype=np.float32)
    a, out = _buffer(impl, a_np), _empty(impl, n)
    sync = impl.sync()
    if impl.kind == "numpy":

        def run() -> None:
            np.multiply(a, np.float32(1.5), out=out)
    else:
        mul = impl.kernels.scalar_mul

        def run() -> None:
            mul(a, 1.5, out)
            sync()

    record(benchmark, impl, "kernels", f"scalar_mul float32 n={n}", nbytes=2.0 * n * F32)
    benchmark(run)
    assert_close(_read(impl, out, (n,)), a_np * 1.5, f"scalar_mul on {impl.name}")


def bench_reduce_sum(benchmark: Any, impl: Impl) -> None:
    n = N_EWISE
    a_np = rng(6).random(n, dtype=np.float32)
    a, out = _buffer(impl, a_np), _empty(impl, 1)
    sync = impl.sync()
    if impl.kind == "numpy":

        def run() -> None:
            np.sum(a, out=out.reshape(()))
    else:
        reduce_sum = impl.kernels.reduce_sum

        def run() -> None:
            reduce_sum(a, out, n)
            sync()

    record(benchmark, impl, "kernels", f"reduce_sum float32 n={n}", nbytes=1.0 * n * F32)
    benchmark(run)
    expected = a_np.astype(np.float64).sum(keepdims=True)
    assert_close(_read(impl, out, (1,)), expected, f"reduce_sum on {impl.name}", rtol=1e-4)


def bench_compact_transposed(benchmark: Any, impl: Impl) -> None:
    n = N_SIDE
    a_np = rng(7).random((n, n), dtype=np.float32)
    a, out = _buffer(impl, a_np), _empty(impl, n * n)
    sync = impl.sync()
    if impl.kind == "numpy":
        src, dst = a.reshape(n, n).T, out.reshape(n, n)

        def run() -> None:
            np.copyto(dst, src)
    else:
        compact = impl.kernels.compact

        def run() -> None:
            compact(a, out, (n, n), (1, n), 0)
            sync()

    record(benchmark, impl, "kernels", f"compact transposed {n}x{n}", nbytes=2.0 * n * n * F32)
    benchmark(run)
    assert_close(_read(impl, out, (n, n)), a_np.T, f"compact transposed on {impl.name}")


def bench_compact_broadcast(benchmark: Any, impl: Impl) -> None:
    n = N_SIDE
    v_np = rng(8).random(n, dtype=np.float32)
    v, out = _buffer(impl, v_np), _empty(impl, n * n)
    sync = impl.sync()
    if impl.kind == "numpy":
        src, dst = np.broadcast_to(v, (n, n)), out.reshape(n, n)

        def run() -> None:
            np.copyto(dst, src)
    else:
        compact = impl.kernels.compact

        def run() -> None:
            compact(v, out, (n, n), (0, 1), 0)
            sync()

    record(
        benchmark,
        impl,
        "kernels",
        f"compact broadcast {n} -> {n}x{n}",
        nbytes=1.0 * n * n * F32 + n * F32,
    )
    benchmark(run)
    assert_close(
        _read(impl, out, (n, n)), np.broadcast_to(v_np, (n, n)), f"compact broadcast on {impl.name}"
    )


# --- convolution (optional kernel conv2d_nhwc) --------------------------------------------
CONV = size(
    dict(n=32, h=32, w=32, c_in=32, k=3, c_out=32), dict(n=2, h=6, w=5, c_in=3, k=3, c_out=4)
)


def _conv_reference(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Valid NHWC convolution with KKIO weights, via a sliding-window view + tensordot."""
    k = w.shape[0]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    # windows: (n, ho, wo, c_in, k, k); weights: (k, k, c_in, c_out)
    return np.tensordot(windows, w, axes=([4, 5, 3], [0, 1, 2]))


def _any_backend_convolves() -> bool:
    from ._common import needle_impls

    return any(not i.skip and i.device.has_kernel("conv2d_nhwc") for i in needle_impls())


def bench_conv2d_nhwc(benchmark: Any, impl: Impl) -> None:
    if impl.kind == "needle" and not impl.device.has_kernel("conv2d_nhwc"):
        pytest.skip(f"needle backend {impl.backend!r} has no conv2d_nhwc kernel")
    if impl.kind == "numpy" and not _any_backend_convolves():
        pytest.skip("no installed needle backend provides conv2d_nhwc to compare with")
    n, h, w_, c_in, k, c_out = (CONV[key] for key in ("n", "h", "w", "c_in", "k", "c_out"))
    ho, wo = h - k + 1, w_ - k + 1
    x_np = rng(9).standard_normal((n, h, w_, c_in), dtype=np.float32)
    w_np = rng(10).standard_normal((k, k, c_in, c_out), dtype=np.float32)
    x, w, out = _buffer(impl, x_np), _buffer(impl, w_np), _empty(impl, n * ho * wo * c_out)
    sync = impl.sync()
    if impl.kind == "numpy":
        x4, w4, o4 = x.reshape(x_np.shape), w.reshape(w_np.shape), out.reshape(n, ho, wo, c_out)

        def run() -> None:
            o4[...] = _conv_reference(x4, w4)
    else:
        conv = impl.kernels.conv2d_nhwc

        def run() -> None:
            conv(x, w, out, n, h, w_, c_in, k, c_out, 1)
            sync()

    flops = 2.0 * n * ho * wo * k * k * c_in * c_out
    record(
        benchmark,
        impl,
        "kernels",
        f"conv2d_nhwc n={n} {h}x{w_}x{c_in} k={k} c_out={c_out}",
        flops=flops,
    )
    benchmark(run)
    expected = _conv_reference(x_np.astype(np.float64), w_np.astype(np.float64))
    assert_close(
        _read(impl, out, (n, ho, wo, c_out)),
        expected,
        f"conv2d_nhwc on {impl.name}",
        rtol=1e-3,
        atol=1e-3 * np.sqrt(k * k * c_in),
    )
