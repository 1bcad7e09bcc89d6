"""A NumPy stand-in for CuPy, to run the kernel table's Python glue without a GPU.

``make_fake_cupy(signatures)`` returns a module object that provides what
``needle_cuda.table`` uses (``cuda.Device``, ``empty``, ``RawModule``, ``asnumpy``,
``matmul``, ``ascontiguousarray``, ``lib.stride_tricks.as_strided``, ``from_dlpack``,
``asarray``, ``array``). Arrays are NumPy arrays that report DLPack device ``(2, 0)``
(CUDA), so the DLPack glue takes its GPU paths. ``RawModule.get_function(name)``
returns a launcher that

* checks the launch arguments against the kernel's parameter list taken from the PTX that
  nvcc produced for the real ``.cu`` source (count and PTX type of every argument), and
  the grid/block shapes;
* then emulates the kernel with the NumPy reference backend, decoding the arguments in
  the order the CUDA signature declares them.

So these tests catch wrong argument order, count or scalar types, and layout encoding
mistakes, but not bugs inside the CUDA code (the GPU tests and the compile check cover
those).
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import types

import numpy as np
from needle_cuda.sources import BINARY_OPS, UNARY_OPS


class FakeArray(np.ndarray):
    def set(self, host):
        if host.dtype != self.dtype or host.shape != self.shape:
            raise TypeError("fake cupy: set() with a different dtype or shape")
        self[...] = host

    def __dlpack_device__(self):
        return (2, 0)  # a "CUDA" array of device 0 (its capsule is NumPy's, CPU memory)


class _HostSide:
    """A fake CUDA producer seen as the CPU producer it really is, for np.from_dlpack."""

    def __init__(self, obj):
        self.obj = obj

    def __dlpack__(self, **kwargs):
        return np.ndarray.__dlpack__(self.obj, **kwargs)

    def __dlpack_device__(self):
        return (1, 0)


def from_dlpack(obj):
    """Shares a fake CUDA producer's memory, as cupy.from_dlpack does a real one's."""
    kind, _ = obj.__dlpack_device__()
    if kind != 2:
        raise RuntimeError("fake cupy: from_dlpack of a producer that is not on a CUDA device")
    return np.from_dlpack(_HostSide(obj)).view(FakeArray)


def ptx_signatures(ptx: str) -> dict[str, list[str]]:
    """{entry name: [PTX param type, ...]} from a PTX text."""
    out = {}
    for m in re.finditer(r"\.entry\s+(\w+)\s*\((.*?)\)", ptx, re.S):
        out[m.group(1)] = re.findall(r"\.param\s+\.(\w+)", m.group(2))
    return out


def _ptx_type(arg) -> str:
    if (isinstance(arg, np.ndarray) and arg.ndim >= 1) or isinstance(arg, FakeArray):
        return "u64"  # device pointer
    if isinstance(arg, np.float32):
        return "f32"
    if isinstance(arg, np.float64):
        return "f64"
    if isinstance(arg, np.int64):
        return "u64"
    if isinstance(arg, np.int32):
        return "u32"
    raise TypeError(f"fake cupy: kernel argument of unexpected type {type(arg).__name__}")


def _emulate(name: str, args: tuple) -> None:
    from needle_numpy import kernels as R

    B = R.Buffer
    base, sfx = name.rsplit("_", 1)
    assert sfx in ("f32", "f64"), name
    for op in BINARY_OPS:
        if base == f"ewise_{op}":
            a, b, out, n = args
            return getattr(R, base)(B(a[:n]), B(b[:n]), B(out[:n]))
        if base == f"scalar_{op}":
            a, v, out, n = args
            return getattr(R, base)(B(a[:n]), float(v), B(out[:n]))
    for op in UNARY_OPS:
        if base == f"ewise_{op}":
            a, out, n = args
            return getattr(R, base)(B(a[:n]), B(out[:n]))
    if base == "ewise_where":
        c, a, b, out, n = args
        return R.ewise_where(B(c[:n]), B(a[:n]), B(b[:n]), B(out[:n]))
    if base == "fill":
        out, v, n = args
        out[:n] = v
        return None
    if base.startswith("astype_"):
        a, out, n = args
        out[:n] = a[:n]
        return None
    if base in ("compact", "ewise_setitem", "scalar_setitem"):
        first, buf, n, ndim, offset = args[:5]
        dims = [int(x) for x in args[5:13]]
        strides = [int(x) for x in args[13:21]]
        assert len(args) == 21
        ndim = int(ndim)
        shape, st = tuple(dims[:ndim]), tuple(strides[:ndim])
        assert int(np.prod(shape)) == int(n)
        assert all(d == 1 for d in dims[ndim:])
        if base == "compact":
            return R.compact(B(first), B(buf[:n]), shape, st, int(offset))
        if base == "ewise_setitem":
            return R.ewise_setitem(B(first[:n]), B(buf), shape, st, int(offset))
        return R.scalar_setitem(int(n), float(first), B(buf), shape, st, int(offset))
    m = re.fullmatch(r"(\w+)_(warp|block)", base)
    if m:
        op = m.group(1)
        a, out, rows, rs = args
        rows, rs = int(rows), int(rs)
        assert (m.group(2) == "warp") == (rs <= 1024)
        size = rows * rs if op == "softmax_last" else rows
        with np.errstate(all="ignore"):
            return getattr(R, op)(B(a[: rows * rs]), B(out[:size]), rs)
    raise AssertionError(f"fake cupy: no emulation for {name}")


def make_fake_cupy(signatures: dict[str, list[str]] | None, launches: list):
    cp = types.ModuleType("cupy")

    class Device:
        def __init__(self, index=0):
            self.id = index

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def synchronize(self):
            return None

    class RawModule:
        def __init__(self, code, options=()):
            assert '#include "common.cuh"' not in code
            self.code, self.options = code, options

        def compile(self):
            return None

        def get_function(self, name):
            if (
                f" {name}(" not in self.code.replace("##", "")
                and name.split("_")[0] not in self.code
            ):
                raise AssertionError(f"{name} not in module source")

            def launch(grid, block, args):
                assert isinstance(grid, tuple) and isinstance(block, tuple)
                assert 1 <= grid[0] <= 65535 and block[0] % 32 == 0, (grid, block)
                if signatures is not None:
                    want = signatures[name]
                    got = [_ptx_type(a) for a in args]
                    assert got == want, f"{name}: launched with {got}, kernel takes {want}"
                launches.append(name)
                _emulate(name, args)

            return launch

    def empty(size, dtype):
        return np.empty(size, dtype=dtype).view(FakeArray)

    cp.cuda = types.SimpleNamespace(
        Device=Device, runtime=types.SimpleNamespace(getDeviceCount=lambda: 1)
    )
    cp.RawModule = RawModule
    cp.empty = empty
    cp.asnumpy = lambda a: np.array(a, copy=True).view(np.ndarray)
    cp.matmul = lambda x, y, out=None: np.matmul(x, y, out=out)
    cp.ascontiguousarray = np.ascontiguousarray
    cp.lib = types.SimpleNamespace(
        stride_tricks=types.SimpleNamespace(
            as_strided=lambda x, shape=None, strides=None: np.lib.stride_tricks.as_strided(
                x, shape=shape, strides=strides
            ).view(FakeArray)
        )
    )
    cp.from_dlpack = from_dlpack
    cp.asarray = lambda x, dtype=None: np.array(x, dtype=dtype).view(FakeArray)
    cp.array = lambda x, dtype=None, copy=True: np.array(x, dtype=dtype, copy=copy).view(FakeArray)
    return cp


@contextlib.contextmanager
def fake_cuda_kernels(signatures: dict[str, list[str]] | None, launches: list):
    """``needle_cuda.table.CudaKernels(0)`` imported over ``make_fake_cupy(...)``; the
    real ``cupy`` and ``needle_cuda.table`` modules (if any) come back afterwards."""
    saved = {k: sys.modules.get(k) for k in ("cupy", "needle_cuda.table")}
    sys.modules["cupy"] = make_fake_cupy(signatures, launches)
    sys.modules.pop("needle_cuda.table", None)
    try:
        yield importlib.import_module("needle_cuda.table").CudaKernels(0)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
