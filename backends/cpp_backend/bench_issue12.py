"""Before/after timings of the issue-12 kernel paths, each pair in one process.

    OMP_NUM_THREADS=1 python backends/cpp_backend/bench_issue12.py

"before" is the same build with the new path switched off: the buffer cache capped at 0,
NDArray told the backend lacks matmul_t / reduce_*_mid (so it compacts or permutes
first), conv2d_nhwc's direct path disabled (im2col), kernels called one by one from
Python instead of program_run. Best of several repeats; on a shared machine the numbers
move by 10-20%, only the ratios mean anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import needle as ndl
import numpy as np
from needle.backend_ndarray.ndarray import NDArray
from needle_cpp import _core

NEW = {"matmul_t", "batched_matmul_t", "reduce_sum_mid", "reduce_max_mid"}


def best(fn: Callable[[], object], repeat: int = 7, number: int = 1) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def compare(fn, off, on, repeat: int = 9) -> tuple[float, float]:
    """Best time of fn with the new path off and on, alternating (load drifts cancel)."""
    times: dict[bool, list[float]] = {False: [], True: []}
    for i in range(2 * repeat + 2):
        mode = bool(i % 2)
        (on if mode else off)()
        t0 = time.perf_counter()
        fn()
        if i >= 2:  # the first of each mode warms up
            times[mode].append(time.perf_counter() - t0)
    return min(times[False]), min(times[True])


def row(name: str, before: float, after: float) -> None:
    print(f"| {name} | {before * 1e3:.3f} ms | {after * 1e3:.3f} ms | {before / after:.2f}x |")


def new_off(dev) -> None:
    has = type(dev).has_kernel
    dev.has_kernel = lambda name: name not in NEW and has(dev, name)


def new_on(dev) -> None:
    dev.__dict__.pop("has_kernel", None)


def main() -> None:
    dev = ndl.device("cpp")
    rng = np.random.default_rng(0)
    print(f"threads {_core.get_num_threads()}, simd {_core.simd_level()}")
    print("| case | before | after | speed-up |\n|---|---|---|---|")

    # 1. the buffer cache: 10 x (alloc + fill) of 64 MB
    def alloc_fill() -> None:
        for _ in range(10):
            h = _core.alloc(16 << 20, "float32")
            _core.fill(h, 1.0)
            del h

    limit = _core.cache_info()["limit_bytes"] >> 20
    before, after = compare(
        alloc_fill, lambda: _core.set_cache_limit_mb(0), lambda: _core.set_cache_limit_mb(limit)
    )
    row("10 x alloc+fill 64 MB", before, after)

    # 2. matmul backward products: a.T @ g and g @ b.T, 512^2
    a = NDArray(rng.standard_normal((512, 512)), device=dev)
    g = NDArray(rng.standard_normal((512, 512)), device=dev)
    for name, fn in (
        ("512^2 a.T @ g", lambda: a.permute((1, 0)) @ g),
        ("512^2 g @ b.T", lambda: g @ a.permute((1, 0))),
    ):
        row(name, *compare(fn, lambda: new_off(dev), lambda: new_on(dev), 11))
    x = ndl.Tensor(rng.standard_normal((512, 512)), device=dev, requires_grad=True)
    w = ndl.Tensor(rng.standard_normal((512, 512)), device=dev, requires_grad=True)

    def backward() -> None:
        (x @ w).sum().backward()

    row(
        "matmul 512^2 forward+backward (Tensor)",
        *compare(backward, lambda: new_off(dev), lambda: new_on(dev), 9),
    )

    # 3. reductions over leading axes
    for name, shape, axes in (
        ("bias grad: sum (128, 512) axis 0", (128, 512), (0,)),
        ("BN stats NHWC: sum (128, 16, 16, 128) axes (0, 1, 2)", (128, 16, 16, 128), (0, 1, 2)),
        ("sum (64, 256, 64) axis 1", (64, 256, 64), (1,)),
    ):
        arr = NDArray(rng.standard_normal(shape), device=dev)
        fn = lambda arr=arr, axes=axes: arr.sum(axis=axes)  # noqa: E731
        row(name, *compare(fn, lambda: new_off(dev), lambda: new_on(dev), 9))

    # 4. conv2d_nhwc: ResNet9-like small spatial sizes (valid conv on a padded input)
    old = _core.conv_direct_max_pixels()
    for n, hw, c_in, c_out, stride in (
        (128, 10, 128, 128, 1),
        (128, 6, 256, 256, 1),
        (128, 18, 64, 128, 2),
        (128, 34, 3, 16, 1),
        (128, 18, 64, 64, 1),
    ):
        k = 3
        ho = (hw - k) // stride + 1
        xs = _core.alloc(n * hw * hw * c_in, "float32")
        _core.from_numpy(rng.standard_normal(n * hw * hw * c_in).astype(np.float32), xs)
        ws = _core.alloc(k * k * c_in * c_out, "float32")
        _core.from_numpy(rng.standard_normal(k * k * c_in * c_out).astype(np.float32), ws)
        out = _core.alloc(n * ho * ho * c_out, "float32")

        def conv(xs=xs, ws=ws, out=out, n=n, hw=hw, c_in=c_in, c_out=c_out, stride=stride, k=k):
            _core.conv2d_nhwc(xs, ws, out, n, hw, hw, c_in, k, c_out, stride)

        before, after = compare(
            conv,
            lambda: _core.set_conv_direct_max_pixels(0),
            lambda: _core.set_conv_direct_max_pixels(1 << 40),
            7,
        )
        row(f"conv {n}x{hw}x{hw}x{c_in} -> {c_out}, k3 s{stride} (out {ho}x{ho})", before, after)
    _core.set_conv_direct_max_pixels(old)

    # 5. programs: 400 small kernel calls, Python loop vs one program_run
    bufs = [_core.alloc(256, "float32") for _ in range(4)]
    for b in bufs:
        _core.fill(b, 0.5)
    instrs = []
    for i in range(100):
        a_, b_, c_ = bufs[i % 4], bufs[(i + 1) % 4], bufs[(i + 2) % 4]
        instrs += [
            ("ewise_add", (a_, b_, c_)),
            ("scalar_mul", (c_, 0.5, c_)),
            ("ewise_tanh", (c_, c_)),
            ("matmul", (a_, b_, c_, 16, 16, 16)),
        ]
    table = [(getattr(_core, n), args) for n, args in instrs]

    def loop() -> None:
        for fn, args in table:
            fn(*args)

    prog = _core.program_compile(instrs)

    def replay() -> None:
        _core.program_run(prog)

    run = [loop]
    row(
        "400 small kernels: Python loop vs program_run",
        *compare(
            lambda: run[0](),
            lambda: run.__setitem__(0, loop),
            lambda: run.__setitem__(0, replay),
            15,
        ),
    )


if __name__ == "__main__":
    main()
