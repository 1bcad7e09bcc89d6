"""The CUDA kernel table: one :class:`CudaKernels` per device (imports CuPy).

Only :func:`needle_cuda.plugin.needle_backend_load` imports this module. A handle is a
:class:`CudaBuffer` wrapping a 1-D ``cupy.ndarray`` on one device. Every kernel checks its
arguments with :mod:`needle_cuda.checks` first, then launches under
``cupy.cuda.Device(index)`` on that device's current stream. Sources are compiled once per
device and module with ``cupy.RawModule`` (CuPy keeps the cubin in its on-disk cache).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import cupy
import numpy as np
from needle.backends.contract import HandlePtr

from . import checks
from .sources import COMPILE_OPTIONS, DTYPE_SUFFIX, KERNEL_MODULE, module_source

_NP_DTYPES = {"float32": np.float32, "float64": np.float64}
_THREADS = 256
_MAX_BLOCKS = 65535
_KDL_CUDA, _KDL_CUDA_MANAGED = 2, 13  # DLPack device types CuPy can consume
_WARP_ROW_LIMIT = 1024  # rows up to this length get one warp each, longer ones a block


def _blocks(n: int, per_block: int = _THREADS) -> int:
    return max(1, min((n + per_block - 1) // per_block, _MAX_BLOCKS))


class CudaBuffer:
    """A flat buffer of ``size`` elements of ``dtype`` on CUDA device ``device``."""

    __slots__ = ("array", "device")

    def __init__(self, array: Any, device: int) -> None:
        self.array = array
        self.device = device

    @property
    def size(self) -> int:
        return int(self.array.size)

    @property
    def dtype(self) -> str:
        return self.array.dtype.name

    def __repr__(self) -> str:
        return f"CudaBuffer(size={self.size}, dtype={self.dtype}, device=cuda:{self.device})"

    @property
    def ptr(self) -> HandlePtr:
        """Device address of the first element: an int, also callable as ``ptr()``."""
        return HandlePtr(self.array.data.ptr)


class CudaKernels:
    """Every kernel of the needle contract for one CUDA device."""

    def __init__(self, index: int) -> None:
        self.index = index
        self._modules: dict[str, Any] = {}
        self._functions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<needle-cuda kernels for cuda:{self.index}>"

    def _device(self) -> Any:
        """A fresh ``cupy.cuda.Device`` context for this table's device (a new object per
        use, so nesting and concurrent threads never share one context's state)."""
        return cupy.cuda.Device(self.index)

    # --- plumbing --------------------------------------------------------------------
    def _fn(self, name: str) -> Any:
        fn = self._functions.get(name)
        if fn is None:
            with self._lock:
                stem = KERNEL_MODULE[name]
                mod = self._modules.get(stem)
                if mod is None:
                    with self._device():
                        mod = cupy.RawModule(code=module_source(stem), options=COMPILE_OPTIONS)
                        mod.compile()
                    self._modules[stem] = mod
                with self._device():
                    fn = mod.get_function(name)
                self._functions[name] = fn
        return fn

    def _launch(self, name: str, n: int, args: tuple, per_block: int = _THREADS) -> None:
        fn = self._fn(name)
        with self._device():
            fn((_blocks(n, per_block),), (_THREADS,), args)

    def _check(self, kernel: str, *handles: Any) -> None:
        checks.check_handles(kernel, handles, CudaBuffer, self.index)

    @staticmethod
    def _scalar(dtype: str, value: Any) -> Any:
        with np.errstate(all="ignore"):
            return _NP_DTYPES[dtype](value)

    def _copy_of(self, a: CudaBuffer) -> CudaBuffer:
        with self._device():
            return CudaBuffer(a.array.copy(), self.index)

    # --- buffers ---------------------------------------------------------------------
    def alloc(self, size: int, dtype: str) -> CudaBuffer:
        dtype = checks.check_dtype("alloc", dtype)
        size = checks.check_nonneg("alloc", "size", size)
        with self._device():
            return CudaBuffer(cupy.empty(size, dtype=_NP_DTYPES[dtype]), self.index)

    def from_numpy(self, src: Any, out: CudaBuffer) -> None:
        self._check("from_numpy", out)
        src = np.asarray(src)
        if src.size != out.size:
            raise ValueError(f"from_numpy: source has {src.size} elements, buffer {out.size}")
        if src.dtype.kind not in "biuf":
            raise TypeError(f"from_numpy: cannot copy a {src.dtype} array into {out.dtype}")
        with np.errstate(all="ignore"):
            host = np.ascontiguousarray(src.reshape(-1), dtype=_NP_DTYPES[out.dtype])
        if out.size:
            with self._device():
                out.array.set(host)

    def to_numpy(self, a: CudaBuffer, shape: Any, strides: Any, offset: Any) -> np.ndarray:
        self._check("to_numpy", a)
        shape, strides, offset, n = checks.check_view("to_numpy", a.size, shape, strides, offset)
        if n == 0:
            return np.empty(shape, dtype=_NP_DTYPES[a.dtype])
        with self._device():
            if checks.is_row_major(shape, strides):
                flat = a.array[offset : offset + n]
            else:
                tmp = self.alloc(n, a.dtype)
                self._compact_checked("to_numpy", a, tmp, shape, strides, offset, n)
                flat = tmp.array
            return cupy.asnumpy(flat).reshape(shape)

    def fill(self, out: CudaBuffer, value: float) -> None:
        self._check("fill", out)
        dtype = checks.check_dtype("fill", out.dtype)
        if out.size:
            v = self._scalar(dtype, value)
            self._launch(
                f"fill_{DTYPE_SUFFIX[dtype]}", out.size, (out.array, v, np.int64(out.size))
            )

    def astype(self, a: CudaBuffer, out: CudaBuffer) -> None:
        self._check("astype", a, out)
        si = DTYPE_SUFFIX[checks.check_dtype("astype", a.dtype)]
        so = DTYPE_SUFFIX[checks.check_dtype("astype", out.dtype)]
        if a.size < out.size:
            raise ValueError(f"astype: source has {a.size} elements, need {out.size}")
        if out.size:
            self._launch(f"astype_{si}_{so}", out.size, (a.array, out.array, np.int64(out.size)))

    # --- layout ----------------------------------------------------------------------
    def _compact_checked(self, kernel, a, out, shape, strides, offset, n) -> None:
        lay = checks.layout_args(kernel, shape, strides)
        sfx = DTYPE_SUFFIX[a.dtype]
        args = (a.array, out.array, np.int64(n), np.int32(lay[0]), np.int64(offset))
        self._launch(f"compact_{sfx}", n, args + tuple(np.int64(x) for x in lay[1:]))

    def compact(
        self, a: CudaBuffer, out: CudaBuffer, shape: Any, strides: Any, offset: Any
    ) -> None:
        self._check("compact", a, out)
        shape, strides, offset, n = checks.check_view("compact", a.size, shape, strides, offset)
        checks.check_flat("compact", n, out)
        checks.check_same_dtype("compact", a, out)
        if n:
            if a is out:  # the view and the destination overlap: read from a copy
                a = self._copy_of(a)
            self._compact_checked("compact", a, out, shape, strides, offset, n)

    def ewise_setitem(
        self, a: CudaBuffer, out: CudaBuffer, shape: Any, strides: Any, offset: Any
    ) -> None:
        self._check("ewise_setitem", a, out)
        shape, strides, offset, n = checks.check_view(
            "ewise_setitem", out.size, shape, strides, offset
        )
        checks.check_flat("ewise_setitem", n, a)
        dtype = checks.check_same_dtype("ewise_setitem", a, out)
        if n:
            if a is out:  # source and destination overlap: read from a copy
                a = self._copy_of(a)
            lay = checks.layout_args("ewise_setitem", shape, strides)
            args = (a.array, out.array, np.int64(n), np.int32(lay[0]), np.int64(offset))
            self._launch(
                f"ewise_setitem_{DTYPE_SUFFIX[dtype]}",
                n,
                args + tuple(np.int64(x) for x in lay[1:]),
            )

    def scalar_setitem(
        self, size: Any, value: float, out: CudaBuffer, shape: Any, strides: Any, offset: Any
    ) -> None:
        self._check("scalar_setitem", out)
        shape, strides, offset, n = checks.check_view(
            "scalar_setitem", out.size, shape, strides, offset
        )
        size = checks.as_int("scalar_setitem", "size", size)
        if n != size:
            raise ValueError(f"scalar_setitem: size {size} does not match view of {n}")
        dtype = checks.check_dtype("scalar_setitem", out.dtype)
        if n:
            # Stride-0 axes only repeat elements: write each element once (a broadcast
            # view of 2**40 elements is one thread's work, not 2**40 stores).
            kept = [(d, s) for d, s in zip(shape, strides) if s != 0]
            shape, strides = tuple(d for d, _ in kept), tuple(s for _, s in kept)
            n = math.prod(shape)
            lay = checks.layout_args("scalar_setitem", shape, strides)
            v = self._scalar(dtype, value)
            args = (v, out.array, np.int64(n), np.int32(lay[0]), np.int64(offset))
            self._launch(
                f"scalar_setitem_{DTYPE_SUFFIX[dtype]}",
                n,
                args + tuple(np.int64(x) for x in lay[1:]),
            )

    # --- element-wise ----------------------------------------------------------------
    def _ewise(self, op: str, a: CudaBuffer, b: CudaBuffer, out: CudaBuffer) -> None:
        kernel = f"ewise_{op}"
        self._check(kernel, a, b, out)
        dtype = checks.check_flat(kernel, out.size, a, b, out)
        n = out.size
        if n:
            self._launch(
                f"{kernel}_{DTYPE_SUFFIX[dtype]}", n, (a.array, b.array, out.array, np.int64(n))
            )

    def _scalar_op(self, op: str, a: CudaBuffer, value: float, out: CudaBuffer) -> None:
        kernel = f"scalar_{op}"
        self._check(kernel, a, out)
        dtype = checks.check_flat(kernel, out.size, a, out)
        n = out.size
        if n:
            v = self._scalar(dtype, value)
            self._launch(f"{kernel}_{DTYPE_SUFFIX[dtype]}", n, (a.array, v, out.array, np.int64(n)))

    def _unary(self, op: str, a: CudaBuffer, out: CudaBuffer) -> None:
        kernel = f"ewise_{op}"
        self._check(kernel, a, out)
        dtype = checks.check_flat(kernel, out.size, a, out)
        n = out.size
        if n:
            self._launch(f"{kernel}_{DTYPE_SUFFIX[dtype]}", n, (a.array, out.array, np.int64(n)))

    def ewise_where(self, cond: CudaBuffer, a: CudaBuffer, b: CudaBuffer, out: CudaBuffer) -> None:
        self._check("ewise_where", cond, a, b, out)
        dtype = checks.check_flat("ewise_where", out.size, cond, a, b, out)
        n = out.size
        if n:
            self._launch(
                f"ewise_where_{DTYPE_SUFFIX[dtype]}",
                n,
                (cond.array, a.array, b.array, out.array, np.int64(n)),
            )

    # --- reductions ------------------------------------------------------------------
    def _rows(
        self, op: str, rows: int, rs: int, a: CudaBuffer, out: CudaBuffer, dtype: str
    ) -> None:
        if rows == 0:
            return
        sfx = DTYPE_SUFFIX[dtype]
        args = (a.array, out.array, np.int64(rows), np.int64(rs))
        if rs <= _WARP_ROW_LIMIT:
            self._launch(f"{op}_warp_{sfx}", rows, args, per_block=_THREADS // 32)
        else:
            self._launch(f"{op}_block_{sfx}", rows, args, per_block=1)

    def reduce_sum(self, a: CudaBuffer, out: CudaBuffer, reduce_size: int) -> None:
        self._check("reduce_sum", a, out)
        rows, rs, dtype = checks.check_rows("reduce_sum", a, out, reduce_size)
        self._rows("reduce_sum", rows, rs, a, out, dtype)

    def reduce_max(self, a: CudaBuffer, out: CudaBuffer, reduce_size: int) -> None:
        self._check("reduce_max", a, out)
        rows, rs, dtype = checks.check_rows("reduce_max", a, out, reduce_size, min_reduce=1)
        self._rows("reduce_max", rows, rs, a, out, dtype)

    def reduce_argmax(self, a: CudaBuffer, out: CudaBuffer, reduce_size: int) -> None:
        self._check("reduce_argmax", a, out)
        rows, rs, dtype = checks.check_rows("reduce_argmax", a, out, reduce_size, min_reduce=1)
        self._rows("reduce_argmax", rows, rs, a, out, dtype)

    def logsumexp_last(self, a: CudaBuffer, out: CudaBuffer, reduce_size: int) -> None:
        self._check("logsumexp_last", a, out)
        rows, rs, dtype = checks.check_rows("logsumexp_last", a, out, reduce_size)
        self._rows("logsumexp_last", rows, rs, a, out, dtype)

    def softmax_last(self, a: CudaBuffer, out: CudaBuffer, reduce_size: int) -> None:
        self._check("softmax_last", a, out)
        rows, rs, dtype = checks.check_softmax("softmax_last", a, out, reduce_size)
        self._rows("softmax_last", rows, rs, a, out, dtype)

    # --- matmul (cuBLAS through cupy.matmul) -------------------------------------------
    def matmul(self, a: CudaBuffer, b: CudaBuffer, out: CudaBuffer, m: int, n: int, p: int) -> None:
        self._check("matmul", a, b, out)
        _, m, n, p, _ = checks.check_matmul("matmul", a, b, out, 1, m, n, p)
        self._gemm(a, b, out, None, m, n, p)

    def batched_matmul(
        self, a: CudaBuffer, b: CudaBuffer, out: CudaBuffer, batch: int, m: int, n: int, p: int
    ) -> None:
        self._check("batched_matmul", a, b, out)
        batch, m, n, p, _ = checks.check_matmul("batched_matmul", a, b, out, batch, m, n, p)
        self._gemm(a, b, out, batch, m, n, p)

    def _gemm(self, a, b, out, batch, m, n, p) -> None:
        lead = () if batch is None else (batch,)
        total = (batch or 1) * m * p
        if total == 0:
            return
        with self._device():
            o = out.array[:total].reshape(*lead, m, p)
            if n == 0:
                o.fill(0)
                return
            x = a.array[: (batch or 1) * m * n].reshape(*lead, m, n)
            y = b.array[: (batch or 1) * n * p].reshape(*lead, n, p)
            cupy.matmul(x, y, out=o)

    # --- convolution (im2col + cuBLAS) -------------------------------------------------
    def conv2d_nhwc(
        self,
        x: CudaBuffer,
        w: CudaBuffer,
        out: CudaBuffer,
        n: int,
        h: int,
        w_: int,
        c_in: int,
        k: int,
        c_out: int,
        stride: int,
    ) -> None:
        self._check("conv2d_nhwc", x, w, out)
        n, h, w_, c_in, k, c_out, stride, ho, wo, _ = checks.check_conv2d(
            "conv2d_nhwc", x, w, out, n, h, w_, c_in, k, c_out, stride
        )
        total = n * ho * wo * c_out
        if total == 0:
            return
        with self._device():
            o = out.array[:total].reshape(n * ho * wo, c_out)
            if c_in == 0:
                o.fill(0)
                return
            xs = x.array[: n * h * w_ * c_in].reshape(n, h, w_, c_in)
            item = xs.itemsize
            s = xs.strides
            cols = cupy.lib.stride_tricks.as_strided(
                xs,
                shape=(n, ho, wo, k, k, c_in),
                strides=(s[0], s[1] * stride, s[2] * stride, s[1], s[2], item),
            )
            cols = cupy.ascontiguousarray(cols).reshape(n * ho * wo, k * k * c_in)
            wm = w.array[: k * k * c_in * c_out].reshape(k * k * c_in, c_out)
            cupy.matmul(cols, wm, out=o)

    # --- DLPack (optional; issue 17) --------------------------------------------------
    def dlpack_export(self, a: CudaBuffer, shape: Any, strides: Any, offset: Any) -> Any:
        """A CuPy view (a DLPack producer) of the strided region of ``a``, sharing memory.

        The view holds ``a``'s device memory, so the memory outlives the buffer for as
        long as the view or a capsule taken from it lives. CuPy's ``__dlpack__(stream=)``
        orders the consumer's stream after this device's current stream, where every
        kernel of this table runs.
        """
        self._check("dlpack_export", a)
        shape, strides, offset, n = checks.check_view(
            "dlpack_export", a.size, shape, strides, offset
        )
        dtype = _NP_DTYPES[checks.check_dtype("dlpack_export", a.dtype)]
        with self._device():
            if n == 0:
                return cupy.empty(shape, dtype=dtype)
            item = a.array.itemsize
            return cupy.lib.stride_tricks.as_strided(
                a.array[offset:], shape=shape, strides=tuple(s * item for s in strides)
            )

    def dlpack_import(self, obj: Any, copy: Any = None) -> tuple[CudaBuffer, tuple, tuple, int]:
        """``(buffer, shape, strides, offset)`` over the producer's memory (the contract's
        ownership rule: the buffer holds the CuPy array ``cupy.from_dlpack`` gives, which
        holds the capsule, whose deleter frees the producer's reference). A producer on
        the host or on another GPU, of another dtype or with negative or fractional
        strides is copied (``copy=False``: ``BufferError``); ``copy=True`` always copies.
        """
        kernel = "dlpack_import"
        if copy not in (None, True, False):
            raise TypeError(f"{kernel}: copy must be None, True or False, got {copy!r}")
        if not hasattr(obj, "__dlpack__") or not hasattr(obj, "__dlpack_device__"):
            raise TypeError(f"{kernel}: {type(obj).__name__} is not a DLPack producer")
        kind, dev_id = (int(v) for v in obj.__dlpack_device__())
        with self._device():
            if kind in (_KDL_CUDA, _KDL_CUDA_MANAGED) and dev_id == self.index:
                arr = cupy.from_dlpack(obj)
                if copy is True:
                    arr = arr.copy()
            elif copy is False:
                where = f"cuda:{dev_id}" if kind == _KDL_CUDA else f"DLPack device type {kind}"
                raise BufferError(
                    f"{kernel}: the producer lives on {where}, not cuda:{self.index}; "
                    "its memory cannot be shared (pass copy=True or copy=None)"
                )
            elif kind in (_KDL_CUDA, _KDL_CUDA_MANAGED):  # another GPU: a device copy
                arr = cupy.array(cupy.from_dlpack(obj), copy=True)
            else:  # host memory: through NumPy
                try:
                    host = np.from_dlpack(obj, copy=True)
                except (BufferError, RuntimeError, TypeError, ValueError) as exc:
                    raise BufferError(f"{kernel}: the producer cannot be read: {exc}") from None
                arr = cupy.asarray(host)
            if arr.dtype.name not in _NP_DTYPES:
                if copy is False:
                    raise BufferError(
                        f"{kernel}: {arr.dtype} data cannot be shared (the backend holds "
                        "float32/float64); pass copy=True"
                    )
                arr = arr.astype(np.float64 if arr.dtype.itemsize > 4 else np.float32)
            item = arr.itemsize
            if arr.size and any(s < 0 or s % item for s in arr.strides):
                if copy is False:
                    raise BufferError(f"{kernel}: strides {arr.strides} (bytes) cannot be shared")
                arr = cupy.ascontiguousarray(arr)
            strides = tuple(s // item for s in arr.strides) if arr.size else (0,) * arr.ndim
            span = 0 if arr.size == 0 else 1 + sum((d - 1) * s for d, s in zip(arr.shape, strides))
            if span == 0:
                flat = cupy.empty(0, dtype=arr.dtype)
            else:
                flat = cupy.lib.stride_tricks.as_strided(arr, shape=(span,), strides=(item,))
        return CudaBuffer(flat, self.index), tuple(int(d) for d in arr.shape), strides, 0

    # --- misc ------------------------------------------------------------------------
    def synchronize(self) -> None:
        with self._device():
            cupy.cuda.Device(self.index).synchronize()


def _make_binary(op: str):
    def ewise(self, a, b, out):
        self._ewise(op, a, b, out)

    def scalar(self, a, value, out):
        self._scalar_op(op, a, value, out)

    ewise.__name__, scalar.__name__ = f"ewise_{op}", f"scalar_{op}"
    ewise.__doc__ = f"ewise_{op}(a, b, out)"
    scalar.__doc__ = f"scalar_{op}(a, value, out)"
    return ewise, scalar


def _make_unary(op: str):
    def ewise(self, a, out):
        self._unary(op, a, out)

    ewise.__name__ = f"ewise_{op}"
    ewise.__doc__ = f"ewise_{op}(a, out)"
    return ewise


def _install() -> None:
    from .sources import BINARY_OPS, UNARY_OPS

    for op in BINARY_OPS:
        e, s = _make_binary(op)
        setattr(CudaKernels, e.__name__, e)
        setattr(CudaKernels, s.__name__, s)
    for op in UNARY_OPS:
        setattr(CudaKernels, f"ewise_{op}", _make_unary(op))


_install()

_TABLES: dict[int, CudaKernels] = {}
_TABLES_LOCK = threading.Lock()


def kernels_for(index: int) -> CudaKernels:
    """The (cached) kernel table of device ``index``."""
    with _TABLES_LOCK:
        table = _TABLES.get(index)
        if table is None:
            table = _TABLES[index] = CudaKernels(index)
        return table
