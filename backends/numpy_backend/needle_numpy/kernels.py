"""The NumPy reference kernels.

Each function follows ``needle.backends.contract``: flat buffers, destination-passing
style, strides and offsets counted in elements. A handle is a :class:`Buffer` that owns
a 1-D NumPy array.
"""

from __future__ import annotations

import functools
import sys
import threading

import numpy as np
from needle.backends.contract import HandlePtr
from needle.backends.dlpack import host_array

_DTYPES = {"float32": np.float32, "float64": np.float64}


class Buffer:
    """A flat buffer of ``size`` elements of ``dtype``."""

    __slots__ = ("array", "dtype", "size")

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.dtype: str = array.dtype.name  # cached: ndarray.dtype.name is slow
        self.size: int = array.size

    def __repr__(self) -> str:
        return f"Buffer(size={self.size}, dtype={self.dtype})"

    @property
    def ptr(self) -> HandlePtr:
        """Address of the first element: an int, also callable as ``ptr()`` (course API)."""
        return HandlePtr(self.array.ctypes.data)


def _check(kernel: str, *handles: Buffer) -> None:
    for h in handles:
        if not isinstance(h, Buffer):
            raise TypeError(f"{kernel}: expected a numpy-backend buffer, got {type(h).__name__}")


def _view(kernel: str, a: Buffer, shape, strides, offset) -> np.ndarray:
    """A NumPy view of ``a`` after checking that every element lies inside it."""
    _check(kernel, a)
    shape, strides, offset = tuple(shape), tuple(strides), int(offset)
    if len(shape) != len(strides):
        raise ValueError(f"{kernel}: shape {shape} and strides {strides} differ in length")
    if any(s < 0 for s in shape) or any(s < 0 for s in strides) or offset < 0:
        raise ValueError(f"{kernel}: negative shape, stride or offset {shape} {strides} {offset}")
    if 0 in shape:
        # No element: nothing to check against the buffer. NumPy refuses shapes whose
        # other dimensions overflow ((0, 2**62)); those views are empty all the same.
        try:
            return np.empty(shape, dtype=a.array.dtype)
        except ValueError:
            return np.empty((0,), dtype=a.array.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
    if last >= a.size:
        raise IndexError(
            f"{kernel}: view (shape {shape}, strides {strides}, offset {offset}) reaches "
            f"element {last} of a buffer of {a.size}"
        )
    item = a.array.itemsize
    return np.lib.stride_tricks.as_strided(
        a.array[offset:], shape=shape, strides=tuple(s * item for s in strides), writeable=True
    )


def _flat(kernel: str, size: int, *handles: Buffer) -> list[np.ndarray]:
    _check(kernel, *handles)
    dtype = handles[0].dtype
    for h in handles:
        if h.size < size:
            raise ValueError(f"{kernel}: buffer of {h.size} elements, need {size}")
        if h.dtype != dtype:
            raise TypeError(f"{kernel}: dtype mismatch {dtype} vs {h.dtype}")
    return [h.array[:size] for h in handles]


# --- buffers ---------------------------------------------------------------------------
def alloc(size: int, dtype: str) -> Buffer:
    if dtype not in _DTYPES:
        raise TypeError(f"alloc: numpy backend does not support dtype {dtype!r}")
    if size < 0:
        raise ValueError(f"alloc: negative size {size}")
    return Buffer(np.empty(int(size), dtype=_DTYPES[dtype]))


def from_numpy(src: np.ndarray, out: Buffer) -> None:
    _check("from_numpy", out)
    src = np.asarray(src)
    if src.size != out.size:
        raise ValueError(f"from_numpy: source has {src.size} elements, buffer {out.size}")
    out.array[:] = src.reshape(-1)


def to_numpy(a: Buffer, shape, strides, offset) -> np.ndarray:
    view = _view("to_numpy", a, shape, strides, offset)
    if view.shape != tuple(shape):
        raise ValueError(f"to_numpy: NumPy cannot make an array of shape {tuple(shape)}")
    return view.copy()


def fill(out: Buffer, value: float) -> None:
    _check("fill", out)
    with np.errstate(all="ignore"):  # 1e300 in float32 is inf, as a cast gives it
        out.array.fill(value)


def astype(a: Buffer, out: Buffer) -> None:
    _check("astype", a, out)
    if a.size < out.size:
        raise ValueError(f"astype: source has {a.size} elements, need {out.size}")
    out.array[:] = a.array[: out.size]


def buffer_view(a: Buffer, offset: int, size: int) -> Buffer:
    """A Buffer over elements ``offset .. offset + size`` of ``a`` (a NumPy slice: it shares
    ``a``'s memory and keeps it alive). ``offset`` must lie on a 64-byte boundary."""
    _check("buffer_view", a)
    _dims("buffer_view", offset=offset, size=size)
    offset, size = int(offset), int(size)
    if (offset * a.array.itemsize) % 64:
        raise ValueError(
            f"buffer_view: offset {offset} ({offset * a.array.itemsize} bytes) is not a "
            "multiple of 64 bytes"
        )
    if offset + size > a.size:
        raise ValueError(
            f"buffer_view: elements {offset} .. {offset + size} reach past a buffer of {a.size}"
        )
    return Buffer(a.array[offset : offset + size])


# --- random draws (optional) ----------------------------------------------------------
_PRIVATE = threading.local()


def bernoulli_mt19937(key: np.ndarray, pos: int, p: float, out: Buffer, n: int) -> int:
    """``random_sample(n) <= p`` from the MT19937 state (key, pos) into ``out``, through a
    private RandomState (the thread's own); ``key`` is advanced in place and the new pos
    returned."""
    kernel = "bernoulli_mt19937"
    _check(kernel, out)
    if not isinstance(key, np.ndarray) or key.dtype != np.uint32:
        got = f"dtype {key.dtype}" if isinstance(key, np.ndarray) else type(key).__name__
        raise TypeError(f"{kernel}: key must be a NumPy uint32 array, got {got}")
    if key.shape != (624,):
        raise ValueError(f"{kernel}: key must have shape (624,), got {key.shape}")
    if not key.flags.c_contiguous or not key.flags.writeable:
        raise ValueError(f"{kernel}: key must be C-contiguous and writeable")
    _dims(kernel, pos=pos, n=n)
    if pos > 624:
        raise ValueError(f"{kernel}: pos must lie in [0, 624], got {pos}")
    if not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{kernel}: p must be a float, got {type(p).__name__}")
    if n > out.size:
        raise ValueError(f"{kernel}: out has {out.size} elements, need {n}")
    rs = getattr(_PRIVATE, "rs", None)
    if rs is None:  # one per thread, made once: RandomState() seeds from the OS (~0.1 ms)
        rs = _PRIVATE.rs = np.random.RandomState(0)
    rs.set_state(("MT19937", key, int(pos), 0, 0.0))
    out.array[: int(n)] = rs.random_sample(int(n)) <= p
    state = rs.get_state(legacy=False)["state"]
    key[...] = state["key"]
    return int(state["pos"])


# --- layout ----------------------------------------------------------------------------
def _same_dtype(kernel: str, a: Buffer, b: Buffer) -> None:
    _check(kernel, a, b)
    if a.dtype != b.dtype:
        raise TypeError(f"{kernel}: dtype mismatch {a.dtype} vs {b.dtype}")


def compact(a: Buffer, out: Buffer, shape, strides, offset) -> None:
    _same_dtype("compact", a, out)
    view = _view("compact", a, shape, strides, offset)
    (dst,) = _flat("compact", view.size, out)
    dst.reshape(view.shape)[...] = view


def ewise_setitem(a: Buffer, out: Buffer, shape, strides, offset) -> None:
    _same_dtype("ewise_setitem", a, out)
    view = _view("ewise_setitem", out, shape, strides, offset)
    (src,) = _flat("ewise_setitem", view.size, a)
    view[...] = src.reshape(view.shape)


def scalar_setitem(size: int, value: float, out: Buffer, shape, strides, offset) -> None:
    view = _view("scalar_setitem", out, shape, strides, offset)
    if view.size != size:
        raise ValueError(f"scalar_setitem: size {size} does not match view of {view.size}")
    # Stride-0 axes only repeat elements: write each element once (a broadcast view of
    # 2**40 elements takes one store, not minutes).
    with np.errstate(all="ignore"):
        view[tuple(slice(0, 1) if st == 0 else slice(None) for st in view.strides)] = value


# --- element-wise ----------------------------------------------------------------------
def _binary(name: str, fn):
    def ewise(a: Buffer, b: Buffer, out: Buffer) -> None:
        x, y, o = _flat(f"ewise_{name}", out.size, a, b, out)
        with np.errstate(all="ignore"):
            fn(x, y, out=o, casting="unsafe")

    def scalar(a: Buffer, value: float, out: Buffer) -> None:
        x, o = _flat(f"scalar_{name}", out.size, a, out)
        with np.errstate(all="ignore"):
            v = o.dtype.type(value)
            if fn is np.power:  # NumPy makes x ** 0.5 sqrt (NaN for -inf); C's pow gives inf
                v = np.full(o.shape, v)
            fn(x, v, out=o, casting="unsafe")

    ewise.__name__, scalar.__name__ = f"ewise_{name}", f"scalar_{name}"
    return ewise, scalar


def _unary(name: str, fn):
    def ewise(a: Buffer, out: Buffer) -> None:
        x, o = _flat(f"ewise_{name}", out.size, a, out)
        with np.errstate(all="ignore"):
            fn(x, out=o)

    ewise.__name__ = f"ewise_{name}"
    return ewise


ewise_add, scalar_add = _binary("add", np.add)
ewise_sub, scalar_sub = _binary("sub", np.subtract)
ewise_mul, scalar_mul = _binary("mul", np.multiply)
ewise_div, scalar_div = _binary("div", np.divide)
ewise_power, scalar_power = _binary("power", np.power)
ewise_maximum, scalar_maximum = _binary("maximum", np.maximum)
ewise_eq, scalar_eq = _binary("eq", np.equal)
ewise_ne, scalar_ne = _binary("ne", np.not_equal)
ewise_lt, scalar_lt = _binary("lt", np.less)
ewise_le, scalar_le = _binary("le", np.less_equal)
ewise_gt, scalar_gt = _binary("gt", np.greater)
ewise_ge, scalar_ge = _binary("ge", np.greater_equal)

ewise_neg = _unary("neg", np.negative)
ewise_abs = _unary("abs", np.abs)
ewise_log = _unary("log", np.log)
ewise_exp = _unary("exp", np.exp)
ewise_tanh = _unary("tanh", np.tanh)
ewise_sqrt = _unary("sqrt", np.sqrt)
ewise_sin = _unary("sin", np.sin)
ewise_cos = _unary("cos", np.cos)


# --- reductions and matmul -------------------------------------------------------------
def _rows(kernel: str, a: Buffer, out: Buffer, reduce_size: int) -> tuple[np.ndarray, np.ndarray]:
    if reduce_size < 0:
        raise ValueError(f"{kernel}: negative reduce_size {reduce_size}")
    (src,) = _flat(kernel, out.size * reduce_size, a)
    (dst,) = _flat(kernel, out.size, out)
    if a.dtype != out.dtype:
        raise TypeError(f"{kernel}: dtype mismatch {a.dtype} vs {out.dtype}")
    if out.size == 0:  # no row: reduce_size may be any size (2**62 included)
        return src[:0].reshape(0, min(reduce_size, 1)), dst
    return src.reshape(out.size, reduce_size), dst


def reduce_sum(a: Buffer, out: Buffer, reduce_size: int) -> None:
    src, dst = _rows("reduce_sum", a, out, reduce_size)
    np.sum(src, axis=1, out=dst)


def reduce_max(a: Buffer, out: Buffer, reduce_size: int) -> None:
    if reduce_size < 1:
        raise ValueError(f"reduce_max: reduce_size must be >= 1, got {reduce_size}")
    src, dst = _rows("reduce_max", a, out, reduce_size)
    np.max(src, axis=1, out=dst)


def reduce_argmax(a: Buffer, out: Buffer, reduce_size: int) -> None:
    if reduce_size < 1:
        raise ValueError(f"reduce_argmax: reduce_size must be >= 1, got {reduce_size}")
    src, dst = _rows("reduce_argmax", a, out, reduce_size)
    dst[:] = np.argmax(src, axis=1)


def logsumexp_last(a: Buffer, out: Buffer, reduce_size: int) -> None:
    src, dst = _rows("logsumexp_last", a, out, reduce_size)
    with np.errstate(all="ignore"):
        m = (
            np.max(src, axis=1, keepdims=True)
            if reduce_size
            else np.full((out.size, 1), -np.inf, src.dtype)
        )
        shift = np.where(np.isfinite(m), m, 0)
        dst[:] = (np.log(np.sum(np.exp(src - shift), axis=1, keepdims=True)) + shift)[:, 0]


def softmax_last(a: Buffer, out: Buffer, reduce_size: int) -> None:
    if reduce_size < 1:
        raise ValueError(f"softmax_last: reduce_size must be >= 1, got {reduce_size}")
    rows = a.size // reduce_size if reduce_size else 0
    x, o = _flat("softmax_last", rows * reduce_size, a, out)
    if rows == 0:
        return
    x, o = x.reshape(rows, reduce_size), o.reshape(rows, reduce_size)
    with np.errstate(all="ignore"):
        e = np.exp(x - np.max(x, axis=1, keepdims=True))
        o[...] = e / np.sum(e, axis=1, keepdims=True)


def ewise_where(cond: Buffer, a: Buffer, b: Buffer, out: Buffer) -> None:
    c, x, y, o = _flat("ewise_where", out.size, cond, a, b, out)
    np.copyto(o, np.where(c != 0, x, y))


def _dims(kernel: str, **dims: int) -> None:
    for what, v in dims.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{kernel}: {what} must be an int, got {type(v).__name__}")
        if v < 0:
            raise ValueError(f"{kernel}: negative {what} {v}")


def matmul(a: Buffer, b: Buffer, out: Buffer, m: int, n: int, p: int) -> None:
    _dims("matmul", m=m, n=n, p=p)
    (x,) = _flat("matmul", m * n, a)
    (y,) = _flat("matmul", n * p, b)
    (o,) = _flat("matmul", m * p, out)
    if not (a.dtype == b.dtype == out.dtype):
        raise TypeError(f"matmul: dtype mismatch {a.dtype}, {b.dtype}, {out.dtype}")
    np.matmul(x.reshape(m, n), y.reshape(n, p), out=o.reshape(m, p))


def batched_matmul(a: Buffer, b: Buffer, out: Buffer, batch: int, m: int, n: int, p: int) -> None:
    _dims("batched_matmul", batch=batch, m=m, n=n, p=p)
    (x,) = _flat("batched_matmul", batch * m * n, a)
    (y,) = _flat("batched_matmul", batch * n * p, b)
    (o,) = _flat("batched_matmul", batch * m * p, out)
    if not (a.dtype == b.dtype == out.dtype):
        raise TypeError(f"batched_matmul: dtype mismatch {a.dtype}, {b.dtype}, {out.dtype}")
    np.matmul(x.reshape(batch, m, n), y.reshape(batch, n, p), out=o.reshape(batch, m, p))


# --- errors name the kernel ----------------------------------------------------------
_BUILTIN_ERRORS = (MemoryError, IndexError, TypeError, ValueError)


def _named(fn):
    """``fn`` whose NumPy errors (``ValueError``, ``TypeError``, ``IndexError``,
    ``MemoryError``; ``OverflowError`` becomes ``ValueError``) start with the kernel's name,
    as the contract asks, raised as the built-in type."""
    name = fn.__name__
    prefix = f"{name}: "

    @functools.wraps(fn)
    def kernel(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (*_BUILTIN_ERRORS, OverflowError) as exc:
            message = str(exc)
            if message.startswith(prefix) and type(exc) in _BUILTIN_ERRORS:
                raise
            cls = next((c for c in _BUILTIN_ERRORS if isinstance(exc, c)), ValueError)
            raise cls(prefix + (message or type(exc).__name__)) from exc

    return kernel


def _name_errors() -> None:
    from needle.backends import KERNELS

    module = sys.modules[__name__]
    for kname in KERNELS:
        fn = getattr(module, kname, None)
        if callable(fn) and fn.__module__ == __name__:
            setattr(module, kname, _named(fn))


_name_errors()


# --- issue 12: transposed matmul operands, middle-axis reductions, programs ----------------
def _trans_flags(kernel: str, trans_a: int, trans_b: int) -> None:
    for what, v in (("trans_a", trans_a), ("trans_b", trans_b)):
        if isinstance(v, bool) or v not in (0, 1):
            raise ValueError(f"{kernel}: {what} must be 0 or 1, got {v!r}")


def matmul_t(
    a: Buffer, b: Buffer, out: Buffer, m: int, n: int, p: int, trans_a: int, trans_b: int
) -> None:
    """out (m, p) = op(a) @ op(b): a is stored (n, m) when trans_a, b (p, n) when trans_b."""
    _dims("matmul_t", m=m, n=n, p=p)
    _trans_flags("matmul_t", trans_a, trans_b)
    (x,) = _flat("matmul_t", m * n, a)
    (y,) = _flat("matmul_t", n * p, b)
    (o,) = _flat("matmul_t", m * p, out)
    if not (a.dtype == b.dtype == out.dtype):
        raise TypeError(f"matmul_t: dtype mismatch {a.dtype}, {b.dtype}, {out.dtype}")
    x = x.reshape(n, m).T if trans_a else x.reshape(m, n)
    y = y.reshape(p, n).T if trans_b else y.reshape(n, p)
    np.matmul(x, y, out=o.reshape(m, p))


def batched_matmul_t(
    a: Buffer,
    b: Buffer,
    out: Buffer,
    batch: int,
    m: int,
    n: int,
    p: int,
    trans_a: int,
    trans_b: int,
) -> None:
    """matmul_t over ``batch`` compact products (each stored as matmul_t says)."""
    _dims("batched_matmul_t", batch=batch, m=m, n=n, p=p)
    _trans_flags("batched_matmul_t", trans_a, trans_b)
    (x,) = _flat("batched_matmul_t", batch * m * n, a)
    (y,) = _flat("batched_matmul_t", batch * n * p, b)
    (o,) = _flat("batched_matmul_t", batch * m * p, out)
    if not (a.dtype == b.dtype == out.dtype):
        raise TypeError(f"batched_matmul_t: dtype mismatch {a.dtype}, {b.dtype}, {out.dtype}")
    x = x.reshape(batch, n, m).transpose(0, 2, 1) if trans_a else x.reshape(batch, m, n)
    y = y.reshape(batch, p, n).transpose(0, 2, 1) if trans_b else y.reshape(batch, n, p)
    np.matmul(x, y, out=o.reshape(batch, m, p))


def _mid(kernel: str, a: Buffer, out: Buffer, outer: int, reduce: int, inner: int):
    _dims(kernel, outer=outer, reduce=reduce, inner=inner)
    (src,) = _flat(kernel, outer * reduce * inner, a)
    (dst,) = _flat(kernel, outer * inner, out)
    if a.dtype != out.dtype:
        raise TypeError(f"{kernel}: dtype mismatch {a.dtype} vs {out.dtype}")
    return src.reshape(outer, reduce, inner), dst.reshape(outer, inner)


def reduce_sum_mid(a: Buffer, out: Buffer, outer: int, reduce: int, inner: int) -> None:
    """out (outer, inner) = sum over axis 1 of compact a (outer, reduce, inner)."""
    src, dst = _mid("reduce_sum_mid", a, out, outer, reduce, inner)
    dst[...] = src.sum(axis=1)


def reduce_max_mid(a: Buffer, out: Buffer, outer: int, reduce: int, inner: int) -> None:
    """out (outer, inner) = max over axis 1 of compact a (outer, reduce, inner); reduce >= 1."""
    if reduce < 1:
        raise ValueError(f"reduce_max_mid: reduce must be >= 1, got {reduce}")
    src, dst = _mid("reduce_max_mid", a, out, outer, reduce, inner)
    dst[...] = src.max(axis=1)


_NOT_IN_PROGRAMS = frozenset(
    (
        "alloc",
        "from_numpy",
        "to_numpy",
        "buffer_view",
        "program_compile",
        "program_run",
        "program_set_scalars",
    )
)


def program_compile(instructions) -> list:
    """Check a list of ``(kernel_name, args)`` calls once; returns ``[(kernel, args), ...]``.

    Each instruction is checked by running its kernel on scratch copies of the buffers it
    names (so exactly the kernel's own checks apply, in program order, and no buffer
    changes); a bad one raises ``ValueError`` naming its index and kernel.
    """
    module = sys.modules[__name__]
    program, scratch = [], {}
    for i, ins in enumerate(instructions):
        name = ins[0] if isinstance(ins, (tuple, list)) and ins else "?"
        where = f"program_compile: instruction {i} ({name})"
        if (
            not isinstance(ins, (tuple, list))
            or len(ins) != 2
            or not isinstance(ins[0], str)
            or not isinstance(ins[1], tuple)
        ):
            raise ValueError(f"{where}: expected a (kernel_name: str, args: tuple) pair")
        name, args = ins
        fn = getattr(module, name, None) if not name.startswith("_") else None
        if name in _NOT_IN_PROGRAMS or not callable(fn) or isinstance(fn, type):
            raise ValueError(f"{where}: not a kernel of the numpy backend")
        dry = tuple(
            scratch.setdefault(id(x), Buffer(np.zeros_like(x.array)))
            if isinstance(x, Buffer)
            else x
            for x in args
        )
        try:
            with np.errstate(all="ignore"):
                fn(*dry)
        except Exception as exc:  # the kernel's own check: reported with the index
            raise ValueError(f"{where}: {exc}") from exc
        program.append((fn, args))
    return program


def program_set_scalars(program, slots, values) -> None:
    """Set float arguments of a program: ``slots[k] = (instruction, argument)`` gets
    ``values[k]`` for the next :func:`program_run` calls (all checked before any changes)."""
    where = "program_set_scalars"
    if len(slots) != len(values):
        raise ValueError(f"{where}: {len(slots)} slots but {len(values)} values")
    patches = []
    for s, (slot, value) in enumerate(zip(slots, values)):
        if (
            not isinstance(slot, tuple)
            or len(slot) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in slot)
        ):
            raise ValueError(f"{where}: slot {s} must be an (instruction, argument) pair of ints")
        i, j = slot
        if not 0 <= i < len(program):
            raise IndexError(
                f"{where}: slot {s} names instruction {i} of a program of {len(program)}"
            )
        fn, args = program[i]
        if not 0 <= j < len(args) or type(args[j]) is not float:
            raise ValueError(
                f"{where}: slot {s} argument {j} of instruction {i} is not a float argument"
            )
        if isinstance(value, bool) or not isinstance(value, (float, int)):
            raise TypeError(f"{where}: value {s} must be a float")
        patches.append((i, j, float(value)))
    for i, j, value in patches:
        fn, args = program[i]
        program[i] = (fn, (*args[:j], value, *args[j + 1 :]))


def program_run(program) -> None:
    """Run every instruction of a program from :func:`program_compile`, in order."""
    for fn, args in program:
        fn(*args)


for _fn in (matmul_t, batched_matmul_t, reduce_sum_mid, reduce_max_mid):
    setattr(sys.modules[__name__], _fn.__name__, _named(_fn))
del _fn


# --- issue 12: fused layers (batch norm, layer norm, softmax cross-entropy) -------------
def _fused_args(kernel: str, eps: float | None, **dims: int) -> None:
    _dims(kernel, **dims)
    if eps is not None and (isinstance(eps, bool) or not isinstance(eps, (int, float))):
        raise TypeError(f"{kernel}: eps must be a float, got {type(eps).__name__}")


def _norm_forward(kernel, x, w, b, out, stats, rows, cols, eps, axis):
    _fused_args(kernel, eps, rows=rows, cols=cols)
    if (rows if axis == 0 else cols) < 1:
        raise ValueError(f"{kernel}: needs at least one {'row' if axis == 0 else 'column'}")
    n_w, n_s = (cols, rows) if axis == 1 else (cols, cols)
    (xa, o) = _flat(kernel, rows * cols, x, out)
    wa, ba = _flat(kernel, n_w, w, b)
    (st,) = _flat(kernel, 2 * n_s, stats)
    _same_dtype(kernel, x, w)
    _same_dtype(kernel, x, stats)
    xa = xa.reshape(rows, cols).astype(np.float64)
    mean = xa.mean(axis=axis, keepdims=True)
    var = ((xa - mean) ** 2).mean(axis=axis, keepdims=True)
    o[...] = ((xa - mean) / np.sqrt(var + eps) * wa + ba).reshape(-1)
    st[...] = np.concatenate([mean.reshape(-1), var.reshape(-1)])


def _norm_backward(kernel, x, dy, w, stats, dx, dwb, rows, cols, eps, axis):
    _fused_args(kernel, eps, rows=rows, cols=cols)
    n_s = cols if axis == 0 else rows
    xa, ga, o = _flat(kernel, rows * cols, x, dy, dx)
    (wa,) = _flat(kernel, cols, w)
    (st,) = _flat(kernel, 2 * n_s, stats)
    (dwb_a,) = _flat(kernel, 2 * cols, dwb)
    for h in (w, stats, dwb):
        _same_dtype(kernel, x, h)
    xa, ga = xa.reshape(rows, cols).astype(np.float64), ga.reshape(rows, cols).astype(np.float64)
    shape = (1, cols) if axis == 0 else (rows, 1)
    mean = st[:n_s].astype(np.float64).reshape(shape)
    r = 1.0 / np.sqrt(st[n_s:].astype(np.float64).reshape(shape) + eps)
    xh = (xa - mean) * r
    dw, db = (ga * xh).sum(axis=0), ga.sum(axis=0)
    with np.errstate(all="ignore"):
        if axis == 0:
            res = wa * r * (ga - db / rows - xh * dw / rows)
        else:
            g = ga * wa
            s1, s2 = g.sum(axis=1, keepdims=True), (g * xh).sum(axis=1, keepdims=True)
            res = r / cols * (cols * g - s1 - xh * s2)
    o[...] = res.reshape(-1)
    dwb_a[...] = np.concatenate([dw, db])


def batchnorm_forward(x, w, b, out, stats, m: int, c: int, eps: float) -> None:
    """Training batch norm of compact x (m, c) per column; stats = [mean; biased var]."""
    _norm_forward("batchnorm_forward", x, w, b, out, stats, m, c, eps, 0)


def batchnorm_backward(x, dy, w, stats, dx, dwb, m: int, c: int, eps: float) -> None:
    """dx and dwb = [sum(dy xh); sum(dy)] of batchnorm_forward."""
    _norm_backward("batchnorm_backward", x, dy, w, stats, dx, dwb, m, c, eps, 0)


def layernorm_forward(x, w, b, out, stats, rows: int, d: int, eps: float) -> None:
    """Layer norm of each row of compact x (rows, d); stats = [means; biased variances]."""
    _norm_forward("layernorm_forward", x, w, b, out, stats, rows, d, eps, 1)


def layernorm_backward(x, dy, w, stats, dx, dwb, rows: int, d: int, eps: float) -> None:
    """dx and dwb = [sum(dy xh); sum(dy)] (over rows) of layernorm_forward."""
    _norm_backward("layernorm_backward", x, dy, w, stats, dx, dwb, rows, d, eps, 1)


def _xent_rows(kernel: str, a: Buffer, labels: Buffer, n: int, k: int):
    _fused_args(kernel, None, n=n, k=k)
    if k < 1:
        raise ValueError(f"{kernel}: k must be >= 1, got {k}")
    (z,) = _flat(kernel, n * k, a)
    (lab,) = _flat(kernel, n, labels)
    _same_dtype(kernel, a, labels)
    if n and not (np.all(lab >= 0) and np.all(lab < k) and np.all(np.mod(lab, 1) == 0)):
        raise IndexError(f"{kernel}: labels must be whole numbers in [0, {k})")
    return z.reshape(n, k), lab.astype(np.int64)


def softmax_xent(a: Buffer, labels: Buffer, out: Buffer, n: int, k: int) -> None:
    """out (n) = logsumexp(row) - row[label] for logits (n, k)."""
    z, lab = _xent_rows("softmax_xent", a, labels, n, k)
    (o,) = _flat("softmax_xent", n, out)
    _same_dtype("softmax_xent", a, out)
    with np.errstate(all="ignore"):
        m = z.max(axis=1, keepdims=True) if n else np.zeros((0, 1), z.dtype)
        shift = np.where(np.isfinite(m), m, 0)
        lse = np.log(np.exp(z - shift).sum(axis=1, keepdims=True)) + shift
        o[...] = lse[:, 0] - z[np.arange(n), lab]


def softmax_xent_backward(a: Buffer, labels: Buffer, g: Buffer, out: Buffer, n: int, k: int):
    """out (n, k) = (softmax(row) - one_hot(label)) * g[0]."""
    z, lab = _xent_rows("softmax_xent_backward", a, labels, n, k)
    (o,) = _flat("softmax_xent_backward", n * k, out)
    (scale,) = _flat("softmax_xent_backward", 1, g)
    _same_dtype("softmax_xent_backward", a, out)
    _same_dtype("softmax_xent_backward", a, g)
    with np.errstate(all="ignore"):
        e = np.exp(z - z.max(axis=1, keepdims=True)) if n else z.copy()
        p = e / e.sum(axis=1, keepdims=True) if n else e
        p[np.arange(n), lab] -= 1.0
        o[...] = (p * scale[0]).reshape(-1)


for _fn in (
    batchnorm_forward,
    batchnorm_backward,
    layernorm_forward,
    layernorm_backward,
    softmax_xent,
    softmax_xent_backward,
):
    setattr(sys.modules[__name__], _fn.__name__, _named(_fn))
del _fn


# --- issue 12: sequence layers (embedding rows, LSTM cell, attention softmax) ------------
def _row_ids(kernel: str, ids: Buffer, n_ids: int, n_rows: int) -> np.ndarray:
    """The ids as int64 after checking each is a whole number in [0, n_rows)."""
    (v,) = _flat(kernel, n_ids, ids)
    with np.errstate(all="ignore"):
        bad = ~((v >= 0) & (v < n_rows) & (np.mod(v, 1) == 0))
    if bad.any():
        k = int(bad.argmax())
        raise IndexError(
            f"{kernel}: id {float(v[k])!r} at position {k} is not a row index in [0, {n_rows})"
        )
    return v.astype(np.int64)


def _rows_kernel(kernel: str, src: Buffer, ids: Buffer, out: Buffer, n_src: int, n_out: int,
                 width: int):  # fmt: skip
    (s,) = _flat(kernel, n_src * width, src)
    (o,) = _flat(kernel, n_out * width, out)
    _same_dtype(kernel, src, ids)
    _same_dtype(kernel, src, out)
    return s, o


def take_rows(w: Buffer, ids: Buffer, out: Buffer, n_ids: int, n_rows: int, width: int) -> None:
    """out (n_ids, width) = rows ids of w (n_rows, width); ids are checked first."""
    _dims("take_rows", n_ids=n_ids, n_rows=n_rows, width=width)
    s, o = _rows_kernel("take_rows", w, ids, out, n_rows, n_ids, width)
    idx = _row_ids("take_rows", ids, n_ids, n_rows)
    o[...] = s.reshape(n_rows, width)[idx].reshape(-1)


def scatter_add_rows(
    g: Buffer, ids: Buffer, out: Buffer, n_ids: int, n_rows: int, width: int
) -> None:
    """out (n_rows, width) = zeros, then row k of g added at row ids[k], k increasing."""
    _dims("scatter_add_rows", n_ids=n_ids, n_rows=n_rows, width=width)
    s, o = _rows_kernel("scatter_add_rows", g, ids, out, n_ids, n_rows, width)
    idx = _row_ids("scatter_add_rows", ids, n_ids, n_rows)
    acc = np.zeros((n_rows, width), dtype=o.dtype)
    np.add.at(acc, idx, s.reshape(n_ids, width))  # unbuffered: in index order
    o[...] = acc.reshape(-1)


def _sig(x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def _lstm_gates(kernel: str, gates: Buffer, c: Buffer, n: int, h: int):
    _dims(kernel, n=n, h=h)
    (z,) = _flat(kernel, n * 4 * h, gates)
    (cv,) = _flat(kernel, n * h, c)
    _same_dtype(kernel, gates, c)
    z = z.reshape(n, 4, h)
    with np.errstate(all="ignore"):
        return _sig(z[:, 0]), _sig(z[:, 1]), np.tanh(z[:, 2]), _sig(z[:, 3]), cv.reshape(n, h)


def lstm_cell(gates: Buffer, cell: Buffer, h_out: Buffer, c_out: Buffer, n: int, h: int) -> None:
    """One LSTM step: c' = s(f) c + s(i) tanh(g), h' = s(o) tanh(c') from gates (n, 4h)."""
    i, f, g, o, cv = _lstm_gates("lstm_cell", gates, cell, n, h)
    ho, co = _flat("lstm_cell", n * h, h_out, c_out)
    _same_dtype("lstm_cell", gates, h_out)
    with np.errstate(all="ignore"):
        c_new = f * cv + i * g
        ho[...] = (o * np.tanh(c_new)).reshape(-1)
    co[...] = c_new.reshape(-1)


def lstm_cell_backward(gates: Buffer, cell: Buffer, dh: Buffer, dc: Buffer, d_gates: Buffer,
                       d_cell: Buffer, n: int, h: int) -> None:  # fmt: skip
    """d_gates (n, 4h) and d_cell (n, h) of lstm_cell given the adjoints dh, dc of h', c'."""
    i, f, g, o, cv = _lstm_gates("lstm_cell_backward", gates, cell, n, h)
    dha, dca, dco = _flat("lstm_cell_backward", n * h, dh, dc, d_cell)
    (dg,) = _flat("lstm_cell_backward", n * 4 * h, d_gates)
    for x in (dh, dc, d_gates, d_cell):
        _same_dtype("lstm_cell_backward", gates, x)
    dha, dca = dha.reshape(n, h), dca.reshape(n, h)
    with np.errstate(all="ignore"):
        t = np.tanh(f * cv + i * g)
        k = dca + dha * o * (1 - t * t)
        res = np.stack(
            [k * g * i * (1 - i), k * cv * f * (1 - f), k * i * (1 - g * g), dha * t * o * (1 - o)],
            axis=1,
        )
        dg[...] = res.reshape(-1)
        dco[...] = (k * f).reshape(-1)


def _fresh(kernel: str, outs: tuple[Buffer, ...], ins: tuple[Buffer, ...]) -> None:
    """Outputs must be fresh buffers: none may be an input or another output."""
    for j, o in enumerate(outs):
        if any(o is x for x in ins) or any(o is x for x in outs[j + 1 :]):
            raise ValueError(f"{kernel}: an output buffer is also an input or another output")


def lstm_layer(gx: Buffer, w_hh: Buffer, h0: Buffer, c0: Buffer, hs: Buffer, cs: Buffer,
               gates: Buffer, t: int, n: int, h: int) -> None:  # fmt: skip
    """An LSTM layer over t steps: hs, cs (t, n, h) and the activated gates (t, 4h, n)."""
    k = "lstm_layer"
    _dims(k, t=t, n=n, h=h)
    x, z = _flat(k, t * n * 4 * h, gx, gates)
    (w,) = _flat(k, 4 * h * h, w_hh)
    hp, cp = _flat(k, n * h, h0, c0)
    ho, co = _flat(k, t * n * h, hs, cs)
    for b in (w_hh, h0, hs):
        _same_dtype(k, gx, b)
    _fresh(k, (hs, cs, gates), (gx, w_hh, h0, c0))
    x, z, w = x.reshape(t, n, 4 * h), z.reshape(t, 4, h, n), w.reshape(h, 4 * h)
    H, C = ho.reshape(t, n, h), co.reshape(t, n, h)
    h_prev, c_prev = hp.reshape(n, h), cp.reshape(n, h)
    with np.errstate(all="ignore"):
        for s in range(t):
            a = (x[s] + h_prev @ w).reshape(n, 4, h)
            act = _sig(a)
            act[:, 2] = np.tanh(a[:, 2])
            z[s] = act.transpose(1, 2, 0)  # step s's gates, transposed
            i, f, g, o = act[:, 0], act[:, 1], act[:, 2], act[:, 3]
            C[s] = f * c_prev + i * g
            H[s] = o * np.tanh(C[s])
            h_prev, c_prev = H[s], C[s]


def lstm_layer_backward(w_hh: Buffer, h0: Buffer, c0: Buffer, hs: Buffer, cs: Buffer,
                        gates: Buffer, dhs: Buffer, dh_n: Buffer, dc_n: Buffer, dgx: Buffer,
                        dw_hh: Buffer, dh0: Buffer, dc0: Buffer, t: int, n: int,
                        h: int) -> None:  # fmt: skip
    """dgx (t, n, 4h), dw_hh (h, 4h), dh0, dc0 (n, h) of lstm_layer given dhs, dh_n, dc_n."""
    k = "lstm_layer_backward"
    _dims(k, t=t, n=n, h=h)
    z, dz = _flat(k, t * n * 4 * h, gates, dgx)
    w, dw = _flat(k, 4 * h * h, w_hh, dw_hh)
    h0a, c0a, dhn, dcn, dh0a, dc0a = _flat(k, n * h, h0, c0, dh_n, dc_n, dh0, dc0)
    H, C, dH = _flat(k, t * n * h, hs, cs, dhs)
    for b in (gates, dw_hh, h0, hs):
        _same_dtype(k, w_hh, b)
    _fresh(k, (dgx, dw_hh, dh0, dc0), (w_hh, h0, c0, hs, cs, gates, dhs, dh_n, dc_n))
    z, dz, w = z.reshape(t, 4, h, n), dz.reshape(t, n, 4, h), w.reshape(h, 4 * h)
    H, C, dH = H.reshape(t, n, h), C.reshape(t, n, h), dH.reshape(t, n, h)
    dh_carry, dc_carry = dhn.reshape(n, h), dcn.reshape(n, h)
    with np.errstate(all="ignore"):
        for s in reversed(range(t)):
            i, f, g, o = z[s, 0].T, z[s, 1].T, z[s, 2].T, z[s, 3].T
            c_prev = C[s - 1] if s else c0a.reshape(n, h)
            tc = np.tanh(C[s])
            d_h = dH[s] + dh_carry
            d_c = dc_carry + d_h * o * (1 - tc * tc)
            dz[s, :, 0] = d_c * g * i * (1 - i)
            dz[s, :, 1] = d_c * c_prev * f * (1 - f)
            dz[s, :, 2] = d_c * i * (1 - g * g)
            dz[s, :, 3] = d_h * tc * o * (1 - o)
            dc_carry = d_c * f
            dh_carry = dz[s].reshape(n, 4 * h) @ w.T
        if t:
            h_prev = np.concatenate([h0a.reshape(1, n, h), H[:-1]]).reshape(t * n, h)
            dw[...] = (h_prev.T @ dz.reshape(t * n, 4 * h)).reshape(-1)
        else:
            dw[...] = 0
    dh0a[...] = dh_carry.reshape(-1)
    dc0a[...] = dc_carry.reshape(-1)


def _relu_flag(kernel: str, relu: int) -> None:
    if isinstance(relu, bool) or relu not in (0, 1):
        raise ValueError(f"{kernel}: relu must be 0 or 1, got {relu!r}")


def rnn_layer(gx: Buffer, w_hh: Buffer, h0: Buffer, hs: Buffer, t: int, n: int, h: int,
              relu: int) -> None:  # fmt: skip
    """An Elman layer over t steps: hs[s] = act(gx[s] + hs[s-1] @ w_hh), hs[-1] = h0."""
    k = "rnn_layer"
    _dims(k, t=t, n=n, h=h)
    _relu_flag(k, relu)
    x, ho = _flat(k, t * n * h, gx, hs)
    (w,) = _flat(k, h * h, w_hh)
    (hp,) = _flat(k, n * h, h0)
    for b in (w_hh, h0):
        _same_dtype(k, gx, b)
    _fresh(k, (hs,), (gx, w_hh, h0))
    x, H, w = x.reshape(t, n, h), ho.reshape(t, n, h), w.reshape(h, h)
    h_prev = hp.reshape(n, h)
    with np.errstate(all="ignore"):
        for s in range(t):
            pre = x[s] + h_prev @ w
            H[s] = np.maximum(pre, 0) if relu else np.tanh(pre)
            h_prev = H[s]


def rnn_layer_backward(w_hh: Buffer, h0: Buffer, hs: Buffer, dhs: Buffer, dgx: Buffer,
                       dw_hh: Buffer, dh0: Buffer, t: int, n: int, h: int,
                       relu: int) -> None:  # fmt: skip
    """dgx (t, n, h), dw_hh (h, h), dh0 (n, h) of rnn_layer given the adjoint dhs of hs."""
    k = "rnn_layer_backward"
    _dims(k, t=t, n=n, h=h)
    _relu_flag(k, relu)
    w, dw = _flat(k, h * h, w_hh, dw_hh)
    h0a, dh0a = _flat(k, n * h, h0, dh0)
    H, dH, dz = _flat(k, t * n * h, hs, dhs, dgx)
    for b in (h0, hs):
        _same_dtype(k, w_hh, b)
    _fresh(k, (dgx, dw_hh, dh0), (w_hh, h0, hs, dhs))
    H, dH, dz, w = H.reshape(t, n, h), dH.reshape(t, n, h), dz.reshape(t, n, h), w.reshape(h, h)
    dh = np.zeros((n, h), dtype=w.dtype)
    with np.errstate(all="ignore"):
        for s in reversed(range(t)):
            d = dH[s] + dh
            dz[s] = np.where(H[s] > 0, d, 0) if relu else d * (1 - H[s] * H[s])
            dh = dz[s] @ w.T
        if t:
            h_prev = np.concatenate([h0a.reshape(1, n, h), H[:-1]]).reshape(t * n, h)
            dw[...] = (h_prev.T @ dz.reshape(t * n, h)).reshape(-1)
        else:
            dw[...] = 0
    dh0a[...] = dh.reshape(-1)


def attention_softmax(a: Buffer, out: Buffer, batch: int, t_q: int, t_k: int, scale: float,
                      causal: int) -> None:  # fmt: skip
    """Softmax over the keys of a * scale, plus -1e9 where key j > i + t_k - t_q if causal."""
    _dims("attention_softmax", batch=batch, t_q=t_q, t_k=t_k)
    if t_k < 1:
        raise ValueError(f"attention_softmax: t_k must be >= 1, got {t_k}")
    if isinstance(causal, bool) or causal not in (0, 1):
        raise ValueError(f"attention_softmax: causal must be 0 or 1, got {causal!r}")
    x, o = _flat("attention_softmax", batch * t_q * t_k, a, out)
    with np.errstate(all="ignore"):
        s = x.reshape(batch, t_q, t_k) * x.dtype.type(scale)
        if causal:
            s = s + np.triu(np.ones((t_q, t_k), x.dtype), k=1 + t_k - t_q) * x.dtype.type(-1e9)
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        o[...] = (e / e.sum(axis=-1, keepdims=True)).reshape(-1)


def _attention_args(kernel: str, q, k, v, mask, batch, heads, t_q, t_k, d, d_v, layout,
                    causal):  # fmt: skip
    """q, k, v as (batch * heads, t, width) arrays (copies in layout 1), the mask (or None),
    and a function writing a (batch * heads, t, width) result into a buffer in layout."""
    _dims(kernel, batch=batch, heads=heads, t_q=t_q, t_k=t_k, d=d, d_v=d_v)
    if t_k < 1:
        raise ValueError(f"{kernel}: t_k must be >= 1, got {t_k}")
    for what, flag in (("layout", layout), ("causal", causal)):
        if isinstance(flag, bool) or flag not in (0, 1):
            raise ValueError(f"{kernel}: {what} must be 0 or 1, got {flag!r}")
    bh = batch * heads
    (qa,) = _flat(kernel, bh * t_q * d, q)
    ka, va = _flat(kernel, bh * t_k * d, k)[0], _flat(kernel, bh * t_k * d_v, v)[0]
    for h in (k, v):
        _same_dtype(kernel, q, h)
    ma = None
    if mask.size:
        (ma,) = _flat(kernel, bh * t_q * t_k, mask)
        _same_dtype(kernel, q, mask)
        ma = ma.reshape(bh, t_q, t_k)

    def split(x, t, w):
        if layout:
            return x.reshape(batch, t, heads, w).transpose(0, 2, 1, 3).reshape(bh, t, w)
        return x.reshape(bh, t, w)

    def put(out_flat, x, t, w):
        if layout:
            x = x.reshape(batch, heads, t, w).transpose(0, 2, 1, 3)
        out_flat[...] = x.reshape(-1)

    return split(qa, t_q, d), split(ka, t_k, d), split(va, t_k, d_v), ma, split, put


def attention_forward(q: Buffer, keys: Buffer, values: Buffer, mask: Buffer, out: Buffer,
                      probs: Buffer, batch: int, heads: int, t_q: int, t_k: int, d: int,
                      d_v: int, layout: int, causal: int, scale: float) -> None:  # fmt: skip
    """probs = softmax(q k^T * scale + causal mask), out = (probs [* mask]) @ v."""
    kn = "attention_forward"
    dims = (batch, heads, t_q, t_k, d, d_v, layout, causal)
    qa, ka, va, ma, _, put = _attention_args(kn, q, keys, values, mask, *dims)
    bh = batch * heads
    (oa,) = _flat(kn, bh * t_q * d_v, out)
    (pa,) = _flat(kn, bh * t_q * t_k, probs)
    _same_dtype(kn, q, out)
    _same_dtype(kn, q, probs)
    with np.errstate(all="ignore"):
        s = (qa @ ka.transpose(0, 2, 1)) * qa.dtype.type(scale)
        if causal:
            s = s + np.triu(np.ones((t_q, t_k), qa.dtype), k=1 + t_k - t_q) * qa.dtype.type(-1e9)
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        res = (p if ma is None else p * ma) @ va
    pa[...] = p.reshape(-1)
    put(oa, res, t_q, d_v)


def attention_backward(q: Buffer, keys: Buffer, values: Buffer, probs: Buffer, mask: Buffer,
                       d_out: Buffer, dq: Buffer, dk: Buffer, dv: Buffer, batch: int,
                       heads: int, t_q: int, t_k: int, d: int, d_v: int, layout: int,
                       causal: int, scale: float) -> None:  # fmt: skip
    """dq, dk, dv of attention_forward given d_out and its probs."""
    kn = "attention_backward"
    dims = (batch, heads, t_q, t_k, d, d_v, layout, causal)
    qa, ka, va, ma, split, put = _attention_args(kn, q, keys, values, mask, *dims)
    bh = batch * heads
    (pa,) = _flat(kn, bh * t_q * t_k, probs)
    (ga,) = _flat(kn, bh * t_q * d_v, d_out)
    outs = [_flat(kn, n, h)[0] for n, h in ((bh * t_q * d, dq), (bh * t_k * d, dk),
                                            (bh * t_k * d_v, dv))]  # fmt: skip
    for h in (probs, d_out, dq, dk, dv):
        _same_dtype(kn, q, h)
    p, g = pa.reshape(bh, t_q, t_k), split(ga, t_q, d_v)
    with np.errstate(all="ignore"):
        w = p if ma is None else p * ma
        d_v_ = w.transpose(0, 2, 1) @ g
        d_p = g @ va.transpose(0, 2, 1)
        if ma is not None:
            d_p = d_p * ma
        d_s = p * (d_p - (d_p * p).sum(axis=-1, keepdims=True)) * qa.dtype.type(scale)
        res = (d_s @ ka, d_s.transpose(0, 2, 1) @ qa, d_v_)
    for o, r, t, wd in zip(outs, res, (t_q, t_k, t_k), (d, d, d_v)):
        put(o, r.astype(qa.dtype, copy=False), t, wd)


for _fn in (take_rows, scatter_add_rows, lstm_cell, lstm_cell_backward, lstm_layer,
            lstm_layer_backward, rnn_layer, rnn_layer_backward, attention_softmax,
            attention_forward, attention_backward):  # fmt: skip
    setattr(sys.modules[__name__], _fn.__name__, _named(_fn))
del _fn


# --- padded convolution and its gradients (optional) -----------------------------------
def _conv_geometry(kernel: str, n, h, w_, c_in, k, c_out, stride, padding) -> tuple[int, int]:
    _dims(kernel, n=n, h=h, w_=w_, c_in=c_in, k=k, c_out=c_out, stride=stride, padding=padding)
    if k < 1:
        raise ValueError(f"{kernel}: kernel size k must be >= 1, got {k}")
    if stride < 1:
        raise ValueError(f"{kernel}: stride must be >= 1, got {stride}")
    if h + 2 * padding < k or w_ + 2 * padding < k:
        raise ValueError(
            f"{kernel}: padded input {h + 2 * padding}x{w_ + 2 * padding} is smaller than "
            f"the kernel {k}x{k}"
        )
    return (h + 2 * padding - k) // stride + 1, (w_ + 2 * padding - k) // stride + 1


def _conv_buffers(kernel, x_like, w, g_like, n, h, w_, c_in, k, c_out, ho, wo):
    (xa,) = _flat(kernel, n * h * w_ * c_in, x_like)
    (wa,) = _flat(kernel, k * k * c_in * c_out, w)
    (ga,) = _flat(kernel, n * ho * wo * c_out, g_like)
    _same_dtype(kernel, x_like, w)
    _same_dtype(kernel, x_like, g_like)
    return xa.reshape(n, h, w_, c_in), wa.reshape(k, k, c_in, c_out), ga.reshape(n, ho, wo, c_out)


def _patches(xp: np.ndarray, k: int, stride: int, ho: int, wo: int) -> np.ndarray:
    """The (n, ho, wo, k, k, c_in) im2col view of a padded NHWC array (no copy)."""
    sn, sh, sw, sc = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, (xp.shape[0], ho, wo, k, k, xp.shape[3]), (sn, sh * stride, sw * stride, sh, sw, sc)
    )


def _pad_hw(x: np.ndarray, padding: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0))) if padding else x


def conv2d_nhwc_pad(x: Buffer, w: Buffer, out: Buffer, n: int, h: int, w_: int, c_in: int,
                    k: int, c_out: int, stride: int, padding: int) -> None:  # fmt: skip
    """out = x zero-padded by ``padding`` on H and W, convolved with KKIO w."""
    kn = "conv2d_nhwc_pad"
    ho, wo = _conv_geometry(kn, n, h, w_, c_in, k, c_out, stride, padding)
    xa, wa, oa = _conv_buffers(kn, x, w, out, n, h, w_, c_in, k, c_out, ho, wo)
    cols = _patches(_pad_hw(xa, padding), k, stride, ho, wo).reshape(-1, k * k * c_in)
    res = cols @ wa.reshape(k * k * c_in, c_out)
    oa[...] = res.reshape(oa.shape)


def conv2d_nhwc_backward_input(g: Buffer, w: Buffer, dx: Buffer, n: int, h: int, w_: int,
                               c_in: int, k: int, c_out: int, stride: int,
                               padding: int) -> None:  # fmt: skip
    """dx (n, h, w_, c_in) of conv2d_nhwc_pad given its output gradient g."""
    kn = "conv2d_nhwc_backward_input"
    ho, wo = _conv_geometry(kn, n, h, w_, c_in, k, c_out, stride, padding)
    _fresh(kn, (dx,), (g, w))
    da, wa, ga = _conv_buffers(kn, dx, w, g, n, h, w_, c_in, k, c_out, ho, wo)
    cols = (ga.reshape(-1, c_out) @ wa.reshape(-1, c_out).T).reshape(n, ho, wo, k, k, c_in)
    dxp = np.zeros((n, h + 2 * padding, w_ + 2 * padding, c_in), dtype=da.dtype)
    for i in range(k):
        for j in range(k):
            rows = slice(i, i + stride * (ho - 1) + 1, stride)
            cols_ = slice(j, j + stride * (wo - 1) + 1, stride)
            dxp[:, rows, cols_] += cols[:, :, :, i, j]
    da[...] = dxp[:, padding : padding + h, padding : padding + w_]


def conv2d_nhwc_backward_weight(x: Buffer, g: Buffer, dw: Buffer, n: int, h: int, w_: int,
                                c_in: int, k: int, c_out: int, stride: int,
                                padding: int) -> None:  # fmt: skip
    """dw (k, k, c_in, c_out) of conv2d_nhwc_pad given its input x and output gradient g."""
    kn = "conv2d_nhwc_backward_weight"
    ho, wo = _conv_geometry(kn, n, h, w_, c_in, k, c_out, stride, padding)
    _fresh(kn, (dw,), (x, g))
    xa, wa, ga = _conv_buffers(kn, x, dw, g, n, h, w_, c_in, k, c_out, ho, wo)
    cols = _patches(_pad_hw(xa, padding), k, stride, ho, wo).reshape(-1, k * k * c_in)
    wa[...] = (cols.T @ ga.reshape(-1, c_out)).reshape(wa.shape)


for _fn in (conv2d_nhwc_pad, conv2d_nhwc_backward_input, conv2d_nhwc_backward_weight):
    setattr(sys.modules[__name__], _fn.__name__, _named(_fn))
del _fn


# --- DLPack (optional) ------------------------------------------------------------------
def dlpack_export(a: Buffer, shape, strides, offset) -> np.ndarray:
    """A NumPy view of the strided region of ``a``: NumPy arrays are DLPack producers, and
    the view's base chain keeps ``a``'s memory alive for as long as any capsule lives."""
    return _view("dlpack_export", a, shape, strides, offset)


def dlpack_import(obj, copy=None):
    """``(Buffer, shape, strides, offset)`` over the producer's memory (see the contract).

    NumPy consumes the capsule (``np.from_dlpack``) and keeps the producer alive; the
    Buffer is a flat view spanning the data, so it keeps that array, and the producer's
    memory, alive in turn.
    """
    arr, strides, span = host_array("dlpack_import", obj, copy)
    flat = np.lib.stride_tricks.as_strided(
        arr, shape=(span,), strides=(arr.itemsize,), writeable=arr.flags.writeable
    )
    return Buffer(flat), tuple(arr.shape), strides, 0
