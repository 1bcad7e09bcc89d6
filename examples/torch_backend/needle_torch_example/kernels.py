"""The ``torch`` backend's kernels: needle's contract over 1-D PyTorch CPU tensors.

A handle is a :class:`TorchBuffer` that owns a 1-D ``torch.Tensor``. Strided views are
``torch.as_strided`` over it (strides and offsets count elements in both needle and
torch), element-wise kernels write through ``out=`` into the first ``out.size``
elements, and matmul is ``torch.mm``. Every kernel checks its arguments first and
raises ``TypeError``/``ValueError``/``IndexError`` naming the kernel.
"""

from __future__ import annotations

import numpy as np
import torch

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_NAMES = {v: k for k, v in _DTYPES.items()}


class TorchBuffer:
    """A flat buffer of ``size`` elements of ``dtype``, held as a 1-D torch tensor."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    @property
    def size(self) -> int:
        return self.tensor.numel()

    @property
    def dtype(self) -> str:
        return _NAMES[self.tensor.dtype]

    def __repr__(self) -> str:
        return f"TorchBuffer(size={self.size}, dtype={self.dtype})"


# --- checks ----------------------------------------------------------------------------
def _check(kernel: str, *handles: TorchBuffer) -> None:
    for h in handles:
        if not isinstance(h, TorchBuffer):
            raise TypeError(f"{kernel}: expected a torch-backend buffer, got {type(h).__name__}")


def _flat(kernel: str, size: int, *handles: TorchBuffer) -> list[torch.Tensor]:
    """The first ``size`` elements of each handle, after checking size and dtype."""
    _check(kernel, *handles)
    for h in handles:
        if h.size < size:
            raise ValueError(f"{kernel}: buffer of {h.size} elements, need {size}")
        if h.dtype != handles[0].dtype:
            raise TypeError(f"{kernel}: dtype mismatch {handles[0].dtype} vs {h.dtype}")
    return [h.tensor[:size] for h in handles]


def _view(kernel: str, h: TorchBuffer, shape, strides, offset) -> torch.Tensor:
    """``torch.as_strided`` over ``h`` after checking that the view lies inside it."""
    _check(kernel, h)
    shape, strides, offset = tuple(shape), tuple(strides), int(offset)
    if len(shape) != len(strides):
        raise ValueError(f"{kernel}: shape {shape} and strides {strides} differ in length")
    if min(shape, default=0) < 0 or min(strides, default=0) < 0 or offset < 0:
        raise ValueError(f"{kernel}: negative shape, stride or offset {shape} {strides} {offset}")
    if 0 in shape:  # no element; torch refuses (0, 2**62), empty all the same
        try:
            return torch.empty(shape, dtype=h.tensor.dtype)
        except RuntimeError:
            return torch.empty(0, dtype=h.tensor.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
    if last >= h.size:
        raise IndexError(
            f"{kernel}: view (shape {shape}, strides {strides}, offset {offset}) reaches "
            f"element {last} of a buffer of {h.size}"
        )
    return torch.as_strided(h.tensor, shape, strides, offset)


# --- buffers ---------------------------------------------------------------------------
def alloc(size: int, dtype: str) -> TorchBuffer:
    if dtype not in _DTYPES:
        raise TypeError(f"alloc: torch backend does not support dtype {dtype!r}")
    if size < 0:
        raise ValueError(f"alloc: negative size {size}")
    try:
        return TorchBuffer(torch.empty(int(size), dtype=_DTYPES[dtype]))
    except RuntimeError as exc:  # 2**62 elements: torch says "Storage size ... overflowed"
        raise MemoryError(f"alloc: cannot allocate {size} elements of {dtype}: {exc}") from None


def _rounded(value: float, dtype: str) -> float:
    """``value`` rounded to ``dtype`` (1e300 in float32 is inf, as a NumPy cast gives)."""
    with np.errstate(all="ignore"):
        return float(np.asarray(value, dtype=dtype))


def from_numpy(src: np.ndarray, out: TorchBuffer) -> None:
    _check("from_numpy", out)
    src = np.asarray(src)
    if src.size != out.size:
        raise ValueError(f"from_numpy: source has {src.size} elements, buffer {out.size}")
    out.tensor.copy_(torch.from_numpy(np.ascontiguousarray(src.reshape(-1))))


def to_numpy(a: TorchBuffer, shape, strides, offset) -> np.ndarray:
    return _view("to_numpy", a, shape, strides, offset).numpy().copy()


def fill(out: TorchBuffer, value: float) -> None:
    _check("fill", out)
    out.tensor.fill_(_rounded(value, out.dtype))


def astype(a: TorchBuffer, out: TorchBuffer) -> None:
    _check("astype", a, out)
    if a.size < out.size:
        raise ValueError(f"astype: source has {a.size} elements, need {out.size}")
    out.tensor.copy_(a.tensor[: out.size])


# --- layout ----------------------------------------------------------------------------
def _same_dtype(kernel: str, a: TorchBuffer, out: TorchBuffer) -> None:
    _check(kernel, a, out)
    if a.dtype != out.dtype:
        raise TypeError(f"{kernel}: dtype mismatch {a.dtype} vs {out.dtype}")


def compact(a: TorchBuffer, out: TorchBuffer, shape, strides, offset) -> None:
    _same_dtype("compact", a, out)
    view = _view("compact", a, shape, strides, offset)
    (dst,) = _flat("compact", view.numel(), out)
    dst.view(view.shape).copy_(view)


def ewise_setitem(a: TorchBuffer, out: TorchBuffer, shape, strides, offset) -> None:
    _same_dtype("ewise_setitem", a, out)
    view = _view("ewise_setitem", out, shape, strides, offset)
    (src,) = _flat("ewise_setitem", view.numel(), a)
    if a is out:
        src = src.clone()  # torch refuses to copy between overlapping memory
    view.copy_(src.view(view.shape))


def scalar_setitem(size: int, value: float, out: TorchBuffer, shape, strides, offset) -> None:
    view = _view("scalar_setitem", out, shape, strides, offset)
    if view.numel() != size:
        raise ValueError(f"scalar_setitem: size {size} does not match view of {view.numel()}")
    # Stride-0 axes only repeat elements: fill each element once.
    view = view[tuple(slice(0, 1) if st == 0 else slice(None) for st in view.stride())]
    view.fill_(_rounded(value, out.dtype))


# --- element-wise ----------------------------------------------------------------------
def _binary(name: str, fn):
    def ewise(a: TorchBuffer, b: TorchBuffer, out: TorchBuffer) -> None:
        x, y, o = _flat(f"ewise_{name}", out.size, a, b, out)
        o.copy_(fn(x, y))

    def scalar(a: TorchBuffer, value: float, out: TorchBuffer) -> None:
        x, o = _flat(f"scalar_{name}", out.size, a, out)
        # A 0-d tensor of the buffer's dtype rounds value as NumPy's reference does.
        o.copy_(fn(x, torch.tensor(value, dtype=x.dtype)))

    ewise.__name__, scalar.__name__ = f"ewise_{name}", f"scalar_{name}"
    return ewise, scalar


def _unary(name: str, fn):
    def ewise(a: TorchBuffer, out: TorchBuffer) -> None:
        x, o = _flat(f"ewise_{name}", out.size, a, out)
        o.copy_(fn(x))

    ewise.__name__ = f"ewise_{name}"
    return ewise


ewise_add, scalar_add = _binary("add", torch.add)
ewise_sub, scalar_sub = _binary("sub", torch.sub)
ewise_mul, scalar_mul = _binary("mul", torch.mul)
ewise_div, scalar_div = _binary("div", torch.div)
ewise_power, scalar_power = _binary("power", torch.pow)
ewise_maximum, scalar_maximum = _binary("maximum", torch.maximum)
ewise_eq, scalar_eq = _binary("eq", torch.eq)
ewise_ne, scalar_ne = _binary("ne", torch.ne)
ewise_lt, scalar_lt = _binary("lt", torch.lt)
ewise_le, scalar_le = _binary("le", torch.le)
ewise_gt, scalar_gt = _binary("gt", torch.gt)
ewise_ge, scalar_ge = _binary("ge", torch.ge)

ewise_neg = _unary("neg", torch.neg)
ewise_abs = _unary("abs", torch.abs)
ewise_log = _unary("log", torch.log)
ewise_exp = _unary("exp", torch.exp)
ewise_tanh = _unary("tanh", torch.tanh)
ewise_sqrt = _unary("sqrt", torch.sqrt)
ewise_sin = _unary("sin", torch.sin)
ewise_cos = _unary("cos", torch.cos)


# --- reductions and matmul -------------------------------------------------------------
def _rows(kernel: str, a: TorchBuffer, out: TorchBuffer, reduce_size: int) -> torch.Tensor:
    if reduce_size < 0:
        raise ValueError(f"{kernel}: negative reduce_size {reduce_size}")
    _flat(kernel, out.size, out)
    (src,) = _flat(kernel, out.size * reduce_size, a)
    if a.dtype != out.dtype:
        raise TypeError(f"{kernel}: dtype mismatch {a.dtype} vs {out.dtype}")
    return src.view(out.size, reduce_size)


def reduce_sum(a: TorchBuffer, out: TorchBuffer, reduce_size: int) -> None:
    rows = _rows("reduce_sum", a, out, reduce_size)
    out.tensor.copy_(rows.sum(dim=1))


def reduce_max(a: TorchBuffer, out: TorchBuffer, reduce_size: int) -> None:
    if reduce_size < 1:
        raise ValueError(f"reduce_max: reduce_size must be >= 1, got {reduce_size}")
    rows = _rows("reduce_max", a, out, reduce_size)
    out.tensor.copy_(rows.amax(dim=1))


def _matmul_operands(kernel: str, a, b, out, sizes: tuple[int, int, int], dims: tuple):
    _check(kernel, a, b, out)
    if not a.dtype == b.dtype == out.dtype:
        raise TypeError(f"{kernel}: dtype mismatch {a.dtype}, {b.dtype}, {out.dtype}")
    if min(sizes) < 0:
        raise ValueError(f"{kernel}: negative size in {sizes}")
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in dims):
        raise ValueError(f"{kernel}: sizes must be non-negative ints, got {dims}")
    return [_flat(kernel, n, h)[0] for n, h in zip(sizes, (a, b, out))]


def matmul(a: TorchBuffer, b: TorchBuffer, out: TorchBuffer, m: int, n: int, p: int) -> None:
    x, y, o = _matmul_operands("matmul", a, b, out, (m * n, n * p, m * p), (m, n, p))
    o.view(m, p).copy_(torch.mm(x.view(m, n), y.view(n, p)))


def batched_matmul(
    a: TorchBuffer, b: TorchBuffer, out: TorchBuffer, batch: int, m: int, n: int, p: int
) -> None:
    sizes = (batch * m * n, batch * n * p, batch * m * p)
    x, y, o = _matmul_operands("batched_matmul", a, b, out, sizes, (batch, m, n, p))
    o.view(batch, m, p).copy_(torch.bmm(x.view(batch, m, n), y.view(batch, n, p)))
