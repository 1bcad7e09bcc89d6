"""Deliberately broken backends: each is the NumPy backend with one realistic bug.

Load with ``pytest -p broken_backends`` (this folder on ``PYTHONPATH``): importing the
module registers every backend of :data:`BROKEN` in-process. Each wraps the kernel table
of ``needle.device("numpy")`` (never ``needle_numpy`` itself) and overrides one kernel;
a bug in an optional kernel the NumPy backend lacks (``conv2d_nhwc``) comes with a
correct NumPy version of that kernel to break. The handles are the NumPy backend's
buffers, whose ``array`` attribute is the flat NumPy array.

The bugs are the ones backend authors really write: IEEE corner cases, loop tails left
unwritten, fast paths with wrong conditions, inputs clobbered, partial writes before an
error, aliasing, views handed out instead of copies, missing size checks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import needle
import numpy as np
from needle.backends import KERNELS, REQUIRED_KERNELS, BackendInfo, BackendStatus, hookimpl

Make = Callable[[Any], Callable[..., Any]]


@dataclasses.dataclass(frozen=True)
class Bug:
    """One single-bug backend: the kernel it breaks, how, and what the bug is."""

    kernel: str
    make: Make
    description: str


class BrokenBackend:
    """A plugin object: the NumPy backend's kernels with ``bug.kernel`` replaced."""

    def __init__(self, name: str, bug: Bug) -> None:
        self.name, self.bug = name, bug

    @hookimpl
    def needle_backend_info(self) -> BackendInfo:
        info = needle.device("numpy").backend.info
        optional = tuple(info.optional_kernels)
        if not KERNELS[self.bug.kernel].required and self.bug.kernel not in optional:
            optional = (*optional, self.bug.kernel)
        return dataclasses.replace(
            info,
            name=self.name,
            optional_kernels=optional,
            description=f"numpy with a broken {self.bug.kernel}: {self.bug.description}",
        )

    @hookimpl
    def needle_backend_status(self) -> BackendStatus:
        return BackendStatus(usable=True, device_count=1)

    @hookimpl
    def needle_backend_load(self, index: int) -> Any:
        base = needle.device("numpy").kernels
        names = [*REQUIRED_KERNELS, *needle.device("numpy").backend.info.optional_kernels]
        table = SimpleNamespace(**{n: getattr(base, n) for n in names})
        setattr(table, self.bug.kernel, self.bug.make(base))
        return table


# --- helpers -----------------------------------------------------------------------------
def _arr(h: Any) -> np.ndarray:
    """The flat NumPy array of a NumPy-backend buffer."""
    return h.array


def _binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Make:
    """Kernel ``name`` computing ``fn(a, b)`` (the real kernel runs first: its checks)."""

    def make(k: Any) -> Callable[..., Any]:
        def kernel(a: Any, b: Any, out: Any) -> None:
            getattr(k, name)(a, b, k.alloc(out.size, out.dtype))  # the real checks
            n = out.size
            with np.errstate(all="ignore"):
                _arr(out)[:] = fn(_arr(a)[:n], _arr(b)[:n])

        return kernel

    return make


def _scalar(name: str, fn: Callable[[np.ndarray, float, Any], np.ndarray]) -> Make:
    def make(k: Any) -> Callable[..., Any]:
        def kernel(a: Any, value: float, out: Any) -> None:
            getattr(k, name)(a, value, k.alloc(out.size, out.dtype))  # the real checks
            n = out.size
            with np.errstate(all="ignore"):
                _arr(out)[:] = fn(_arr(a)[:n], value, _arr(out).dtype.type)

        return kernel

    return make


def _unary(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> Make:
    def make(k: Any) -> Callable[..., Any]:
        def kernel(a: Any, out: Any) -> None:
            getattr(k, name)(a, k.alloc(out.size, out.dtype))  # the real checks
            with np.errstate(all="ignore"):
                _arr(out)[:] = fn(_arr(a)[: out.size])

        return kernel

    return make


def _tail(kernel: str, lanes: int, min_size: int) -> Make:
    """The real kernel, except the last ``n % lanes`` elements stay unwritten once
    ``n >= min_size`` (a vector loop without its scalar remainder)."""

    def make(k: Any) -> Callable[..., Any]:
        real = getattr(k, kernel)

        def broken(*args: Any) -> None:
            out = args[-1]
            n = out.size
            if n < min_size or n % lanes == 0:
                return real(*args)
            keep = _arr(out)[n - n % lanes :].copy()
            real(*args)
            _arr(out)[n - n % lanes :] = keep
            return None

        return broken

    return make


# --- the bugs -------------------------------------------------------------------------------
def _add_off_by_1e3(k: Any) -> Callable[..., Any]:
    def ewise_add(a: Any, b: Any, out: Any) -> None:
        k.ewise_add(a, b, out)
        k.scalar_add(out, 1e-3, out)

    return ewise_add


def _compact_ignoring_offset(k: Any) -> Callable[..., Any]:
    def compact(a: Any, out: Any, shape: Any, strides: Any, offset: int) -> None:
        k.compact(a, out, shape, strides, 0)

    return compact


def _compact_unit_inner_stride(k: Any) -> Callable[..., Any]:
    def compact(a: Any, out: Any, shape: Any, strides: Any, offset: int) -> None:
        strides = tuple(strides)
        if strides and strides[-1] > 1:  # "the last axis is always contiguous"
            strides = (*strides[:-1], 1)
        k.compact(a, out, shape, strides, offset)

    return compact


def _reduce_max_skipping_last(k: Any) -> Callable[..., Any]:
    def reduce_max(a: Any, out: Any, reduce_size: int) -> None:
        if reduce_size < 2:
            return k.reduce_max(a, out, reduce_size)
        rows = _arr(a)[: out.size * reduce_size].reshape(out.size, reduce_size)
        _arr(out)[:] = rows[:, :-1].max(axis=1)
        return None

    return reduce_max


def _reduce_max_drops_later_nan(k: Any) -> Callable[..., Any]:
    def reduce_max(a: Any, out: Any, reduce_size: int) -> None:
        k.reduce_max(a, out, reduce_size)  # checks
        rows = _arr(a)[: out.size * reduce_size].reshape(out.size, reduce_size)
        # m = row[0]; for v in row[1:]: if v > m: m = v   (a later NaN never wins)
        with np.errstate(all="ignore"):
            best = np.fmax.reduce(rows, axis=1)
        _arr(out)[:] = np.where(np.isnan(rows[:, 0]), np.nan, best)

    return reduce_max


def _matmul_transposing_b(k: Any) -> Callable[..., Any]:
    def matmul(a: Any, b: Any, out: Any, m: int, n: int, p: int) -> None:
        x = _arr(a)[: m * n].reshape(m, n)
        y = _arr(b)[: n * p].reshape(p, n).T  # reads b as if column-major
        _arr(out)[: m * p] = (x @ y).reshape(-1)

    return matmul


def _matmul_last_tile(k: Any) -> Callable[..., Any]:
    def matmul(a: Any, b: Any, out: Any, m: int, n: int, p: int) -> None:
        if m < 64 or m % 16 == 0:
            return k.matmul(a, b, out, m, n, p)
        keep = _arr(out)[(m - m % 16) * p : m * p].copy()
        k.matmul(a, b, out, m, n, p)
        _arr(out)[(m - m % 16) * p : m * p] = keep  # the threads' last partial tile
        return None

    return matmul


def _matmul_n0_untouched(k: Any) -> Callable[..., Any]:
    def matmul(a: Any, b: Any, out: Any, m: int, n: int, p: int) -> None:
        if n == 0:
            return None  # "nothing to multiply"
        return k.matmul(a, b, out, m, n, p)

    return matmul


def _batched_one_row(k: Any) -> Callable[..., Any]:
    def batched_matmul(a: Any, b: Any, out: Any, batch: int, m: int, n: int, p: int) -> None:
        if m != 1:
            return k.batched_matmul(a, b, out, batch, m, n, p)
        x = _arr(a)[: batch * n].reshape(batch, n)
        y = _arr(b)[: n * p].reshape(n, p)  # fast path for one-row operands: b[0] only
        _arr(out)[: batch * p] = (x @ y).reshape(-1)
        return None

    return batched_matmul


def _logsumexp_all_neginf_nan(k: Any) -> Callable[..., Any]:
    def logsumexp_last(a: Any, out: Any, reduce_size: int) -> None:
        if reduce_size == 0:
            return k.logsumexp_last(a, out, reduce_size)
        rows = _arr(a)[: out.size * reduce_size].reshape(out.size, reduce_size)
        with np.errstate(all="ignore"):
            m = rows.max(axis=1, keepdims=True)  # no guard for m == -inf
            _arr(out)[:] = (np.log(np.exp(rows - m).sum(axis=1, keepdims=True)) + m)[:, 0]
        return None

    return logsumexp_last


def _logsumexp_unstable(k: Any) -> Callable[..., Any]:
    def logsumexp_last(a: Any, out: Any, reduce_size: int) -> None:
        k.logsumexp_last(a, out, reduce_size)
        rows = _arr(a)[: out.size * reduce_size].reshape(out.size, reduce_size)
        with np.errstate(all="ignore"):
            _arr(out)[:] = np.log(np.exp(rows).sum(axis=1))

    return logsumexp_last


def _logsumexp_clobbers_input(k: Any) -> Callable[..., Any]:
    def logsumexp_last(a: Any, out: Any, reduce_size: int) -> None:
        if reduce_size == 0:
            return k.logsumexp_last(a, out, reduce_size)
        rows = _arr(a)[: out.size * reduce_size].reshape(out.size, reduce_size)
        with np.errstate(all="ignore"):
            m = rows.max(axis=1, keepdims=True)
            shift = np.where(np.isfinite(m), m, 0)
            rows -= shift  # shifts the input in place and never restores it
            _arr(out)[:] = (np.log(np.exp(rows).sum(axis=1, keepdims=True)) + shift)[:, 0]
        return None

    return logsumexp_last


def _softmax_unstable(k: Any) -> Callable[..., Any]:
    def softmax_last(a: Any, out: Any, reduce_size: int) -> None:
        k.softmax_last(a, out, reduce_size)
        rows = out.size // reduce_size
        x = _arr(a)[: rows * reduce_size].reshape(rows, reduce_size)
        with np.errstate(all="ignore"):
            e = np.exp(x)  # no max shift
            _arr(out)[: rows * reduce_size] = (e / e.sum(axis=1, keepdims=True)).reshape(-1)

    return softmax_last


def _argmax_last_tie(k: Any) -> Callable[..., Any]:
    def reduce_argmax(a: Any, out: Any, reduce_size: int) -> None:
        k.reduce_argmax(a, out, reduce_size)
        rows = _arr(a)[: out.size * reduce_size].reshape(out.size, reduce_size)
        _arr(out)[:] = reduce_size - 1 - np.argmax(rows[:, ::-1], axis=1)

    return reduce_argmax


def _argmax_ignores_nan(k: Any) -> Callable[..., Any]:
    def reduce_argmax(a: Any, out: Any, reduce_size: int) -> None:
        k.reduce_argmax(a, out, reduce_size)
        rows = _arr(a)[: out.size * reduce_size].reshape(out.size, reduce_size)
        safe = np.where(np.isnan(rows), -np.inf, rows)
        _arr(out)[:] = np.argmax(safe, axis=1)

    return reduce_argmax


def _reduce_sum_rows_tail(k: Any) -> Callable[..., Any]:
    def reduce_sum(a: Any, out: Any, reduce_size: int) -> None:
        rows = out.size
        if rows <= 64 or rows % 64 == 0:
            return k.reduce_sum(a, out, reduce_size)
        keep = _arr(out)[rows - rows % 64 :].copy()
        k.reduce_sum(a, out, reduce_size)
        _arr(out)[rows - rows % 64 :] = keep  # the last block of 64 rows is dropped
        return None

    return reduce_sum


def _reduce_sum_empty_untouched(k: Any) -> Callable[..., Any]:
    def reduce_sum(a: Any, out: Any, reduce_size: int) -> None:
        if reduce_size == 0:
            return None  # "nothing to sum"
        return k.reduce_sum(a, out, reduce_size)

    return reduce_sum


def _where_positive(k: Any) -> Callable[..., Any]:
    def ewise_where(cond: Any, a: Any, b: Any, out: Any) -> None:
        k.ewise_where(cond, a, b, out)
        n = out.size
        _arr(out)[:] = np.where(_arr(cond)[:n] > 0, _arr(a)[:n], _arr(b)[:n])

    return ewise_where


def _partial_write_then_raise(k: Any) -> Callable[..., Any]:
    def ewise_add(a: Any, b: Any, out: Any) -> None:
        n = min(a.size, b.size, out.size)
        with np.errstate(all="ignore"):
            _arr(out)[:n] = _arr(a)[:n] + _arr(b)[:n]  # writes first, checks after
        k.ewise_add(a, b, out)

    return ewise_add


def _sub_negate_then_add(k: Any) -> Callable[..., Any]:
    def ewise_sub(a: Any, b: Any, out: Any) -> None:
        k.ewise_sub(a, b, out)  # checks
        o, n = _arr(out), out.size
        with np.errstate(all="ignore"):
            np.negative(_arr(b)[:n], out=o)  # out = -b; out += a: wrong when out is a
            o += _arr(a)[:n]

    return ewise_sub


def _to_numpy_view(k: Any) -> Callable[..., Any]:
    def to_numpy(a: Any, shape: Any, strides: Any, offset: int) -> np.ndarray:
        copy = k.to_numpy(a, shape, strides, offset)  # checks
        item = _arr(a).itemsize
        if 0 in tuple(shape):
            return copy
        return np.lib.stride_tricks.as_strided(
            _arr(a)[int(offset) :], tuple(shape), tuple(int(s) * item for s in strides)
        )

    return to_numpy


def _to_numpy_ignoring_offset(k: Any) -> Callable[..., Any]:
    def to_numpy(a: Any, shape: Any, strides: Any, offset: int) -> np.ndarray:
        k.to_numpy(a, shape, strides, offset)  # checks
        return k.to_numpy(a, shape, strides, 0)

    return to_numpy


def _from_numpy_keeps_reference(k: Any) -> Callable[..., Any]:
    def from_numpy(src: np.ndarray, out: Any) -> None:
        k.from_numpy(src, out)  # checks
        out.array = np.asarray(src, dtype=out.dtype).reshape(-1)  # no copy

    return from_numpy


def _fill_through_float32(k: Any) -> Callable[..., Any]:
    def fill(out: Any, value: float) -> None:
        with np.errstate(all="ignore"):
            k.fill(out, float(np.float32(value)))

    return fill


def _scalar_setitem_no_size_check(k: Any) -> Callable[..., Any]:
    def scalar_setitem(
        size: int, value: float, out: Any, shape: Any, strides: Any, offset: int
    ) -> None:
        n = int(np.prod(shape, dtype=np.int64))
        k.scalar_setitem(n, value, out, shape, strides, offset)  # trusts the view, not size

    return scalar_setitem


def _scalar_setitem_ignoring_offset(k: Any) -> Callable[..., Any]:
    def scalar_setitem(
        size: int, value: float, out: Any, shape: Any, strides: Any, offset: int
    ) -> None:
        k.scalar_setitem(size, value, out, shape, strides, 0)

    return scalar_setitem


def _ewise_setitem_no_size_check(k: Any) -> Callable[..., Any]:
    def ewise_setitem(a: Any, out: Any, shape: Any, strides: Any, offset: int) -> None:
        n = int(np.prod(shape, dtype=np.int64))
        if a.size >= n:
            return k.ewise_setitem(a, out, shape, strides, offset)
        padded = k.alloc(n, a.dtype)  # reads past a: wraps around instead of raising
        k.from_numpy(np.resize(_arr(a), n).astype(a.dtype), padded)
        return k.ewise_setitem(padded, out, shape, strides, offset)

    return ewise_setitem


def _ewise_setitem_contiguous(k: Any) -> Callable[..., Any]:
    def ewise_setitem(a: Any, out: Any, shape: Any, strides: Any, offset: int) -> None:
        n = int(np.prod(shape, dtype=np.int64))
        k.ewise_setitem(a, k.alloc(out.size, out.dtype), shape, strides, offset)  # checks
        _arr(out)[offset : offset + n] = _arr(a)[:n]  # ignores the strides

    return ewise_setitem


def _conv_reference(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    from needle.backends import KERNELS

    return KERNELS["conv2d_nhwc"].reference(x, w, stride)


def _conv(bug: str) -> Make:
    """A correct NumPy conv2d_nhwc, then broken by ``bug``."""

    def make(k: Any) -> Callable[..., Any]:
        def conv2d_nhwc(x: Any, w: Any, out: Any, n: int, h: int, w_: int, c_in: int, kk: int,
                        c_out: int, stride: int) -> None:  # fmt: skip
            xs = _arr(x)[: n * h * w_ * c_in].reshape(n, h, w_, c_in)
            ws = _arr(w)[: kk * kk * c_in * c_out].reshape(kk, kk, c_in, c_out)
            if bug == "channels" and c_in > 4:  # the vector loop over 4 channels, no tail
                c4 = c_in - c_in % 4
                xs, ws = xs[..., :c4], ws[:, :, :c4, :]
            if bug == "square" and h != w_:  # every size computed from h
                fixed = np.zeros((n, h, h, c_in), dtype=xs.dtype)
                m = min(h, w_)
                fixed[:, :, :m] = xs[:, :, :m]
                res = _conv_reference(fixed, ws, stride).reshape(-1)
                size = min(out.size, res.size)
                _arr(out)[:size] = res[:size]
                return
            res = _conv_reference(xs, ws, stride).reshape(-1)
            _arr(out)[: res.size] = res

        return conv2d_nhwc

    return make


BROKEN: dict[str, Bug] = {
    # the first four (kept from the original meta-tests)
    "broken_add": Bug("ewise_add", _add_off_by_1e3, "adds 1e-3"),
    "broken_compact": Bug("compact", _compact_ignoring_offset, "ignores the offset"),
    "broken_reduce_max": Bug("reduce_max", _reduce_max_skipping_last, "skips the last column"),
    "broken_matmul": Bug("matmul", _matmul_transposing_b, "reads b column-major"),
    # IEEE semantics
    "broken_div_zero": Bug(
        "ewise_div", _binary("ewise_div", lambda a, b: np.where(b == 0, 0, a / b)), "x / 0 gives 0"
    ),
    "broken_scalar_div_zero": Bug(
        "scalar_div",
        _scalar("scalar_div", lambda a, v, t: a / t(v) if v != 0 else np.zeros_like(a)),
        "x / 0 gives 0",
    ),
    "broken_reduce_max_nan": Bug(
        "reduce_max", _reduce_max_drops_later_nan, "a NaN after the first element is dropped"
    ),
    "broken_logsumexp_neginf": Bug(
        "logsumexp_last", _logsumexp_all_neginf_nan, "NaN on a row of all -inf"
    ),
    "broken_scalar_not_cast": Bug(
        "scalar_eq",
        _scalar("scalar_eq", lambda a, v, t: (a.astype(np.float64) == v).astype(a.dtype)),
        "compares with the float64 scalar ([0.1] == 0.1 is 0 in float32)",
    ),
    "broken_pow_exp_log": Bug(
        "ewise_power",
        _binary("ewise_power", lambda a, b: np.exp(b * np.log(a))),
        "pow as exp(b log a)",
    ),
    "broken_log_abs": Bug(
        "ewise_log", _unary("ewise_log", lambda a: np.log(np.abs(a))), "log(|x|)"
    ),
    "broken_exp_clamped": Bug(
        "ewise_exp",
        _unary("ewise_exp", lambda a: np.exp(np.clip(a, -87.3, 88.7))),
        "input clamped to float32's range",
    ),
    "broken_tanh_overflow": Bug(
        "ewise_tanh",
        _unary("ewise_tanh", lambda a: (np.exp(2 * a) - 1) / (np.exp(2 * a) + 1)),
        "tanh from exp (NaN for large x)",
    ),
    "broken_sqrt_clamped": Bug(
        "ewise_sqrt",
        _unary("ewise_sqrt", lambda a: np.sqrt(np.maximum(a, 0))),
        "sqrt of a negative is 0",
    ),
    "broken_eq_approx": Bug(
        "ewise_eq",
        _binary("ewise_eq", lambda a, b: np.isclose(a, b).astype(a.dtype)),
        "approximate equality",
    ),
    "broken_le_not_gt": Bug(
        "ewise_le",
        _binary("ewise_le", lambda a, b: (~(a > b)).astype(a.dtype)),
        "<= as !(>) (NaN gives 1)",
    ),
    "broken_ne_lt_or_gt": Bug(
        "ewise_ne",
        _binary("ewise_ne", lambda a, b: ((a < b) | (a > b)).astype(a.dtype)),
        "!= as < or > (NaN gives 0)",
    ),
    "broken_ge_as_gt": Bug(
        "ewise_ge", _binary("ewise_ge", lambda a, b: (a > b).astype(a.dtype)), ">= as >"
    ),
    "broken_maximum_nan": Bug(
        "ewise_maximum", _binary("ewise_maximum", np.fmax), "maximum(NaN, v) gives v"
    ),
    "broken_scalar_maximum_nan": Bug(
        "scalar_maximum",
        _scalar("scalar_maximum", lambda a, v, t: np.fmax(a, t(v))),
        "maximum(NaN, v) gives v",
    ),
    "broken_scalar_sub_reversed": Bug(
        "scalar_sub", _scalar("scalar_sub", lambda a, v, t: t(v) - a), "value - a"
    ),
    "broken_where_positive": Bug("ewise_where", _where_positive, "selects on cond > 0"),
    "broken_argmax_last": Bug("reduce_argmax", _argmax_last_tie, "the last maximum on ties"),
    "broken_argmax_nan": Bug("reduce_argmax", _argmax_ignores_nan, "ignores NaN"),
    "broken_softmax_unstable": Bug("softmax_last", _softmax_unstable, "no max shift"),
    "broken_logsumexp_unstable": Bug("logsumexp_last", _logsumexp_unstable, "no max shift"),
    # sizes that reach real code paths
    "broken_mul_simd_tail": Bug(
        "ewise_mul", _tail("ewise_mul", 8, 64), "8-lane loop, tail unwritten (n >= 64)"
    ),
    "broken_sqrt_unroll_tail": Bug(
        "ewise_sqrt", _tail("ewise_sqrt", 32, 64), "32-element unroll, tail unwritten"
    ),
    "broken_scalar_add_chunk_tail": Bug(
        "scalar_add",
        _tail("scalar_add", 1 << 16, 1 << 16),
        "thread chunks of 65536, last chunk unwritten",
    ),
    "broken_reduce_sum_rows": Bug(
        "reduce_sum", _reduce_sum_rows_tail, "rows beyond a multiple of 64 unwritten"
    ),
    "broken_reduce_sum_empty": Bug(
        "reduce_sum", _reduce_sum_empty_untouched, "reduce_size 0 leaves out unwritten"
    ),
    "broken_matmul_tile": Bug("matmul", _matmul_last_tile, "last 16-row tile unwritten"),
    "broken_matmul_n0": Bug("matmul", _matmul_n0_untouched, "n == 0 leaves out unwritten"),
    "broken_batched_one_row": Bug(
        "batched_matmul", _batched_one_row, "one-row fast path uses the first b for all"
    ),
    "broken_conv_channels": Bug(
        "conv2d_nhwc", _conv("channels"), "channels beyond a multiple of 4 ignored"
    ),
    "broken_conv_square": Bug("conv2d_nhwc", _conv("square"), "assumes square images"),
    # memory discipline
    "broken_logsumexp_clobbers": Bug(
        "logsumexp_last", _logsumexp_clobbers_input, "shifts its input in place"
    ),
    "broken_add_partial_write": Bug(
        "ewise_add", _partial_write_then_raise, "writes out before raising"
    ),
    "broken_sub_alias": Bug(
        "ewise_sub", _sub_negate_then_add, "out = -b; out += a (wrong when out is a)"
    ),
    "broken_to_numpy_view": Bug("to_numpy", _to_numpy_view, "returns a view of the buffer"),
    "broken_to_numpy_offset": Bug("to_numpy", _to_numpy_ignoring_offset, "ignores the offset"),
    "broken_from_numpy_ref": Bug(
        "from_numpy", _from_numpy_keeps_reference, "keeps the caller's array"
    ),
    "broken_fill_float32": Bug("fill", _fill_through_float32, "rounds the value to float32"),
    # layout and size checks
    "broken_scalar_setitem_size": Bug(
        "scalar_setitem", _scalar_setitem_no_size_check, "does not check size"
    ),
    "broken_scalar_setitem_offset": Bug(
        "scalar_setitem", _scalar_setitem_ignoring_offset, "ignores the offset"
    ),
    "broken_ewise_setitem_size": Bug(
        "ewise_setitem", _ewise_setitem_no_size_check, "reads past a short source"
    ),
    "broken_ewise_setitem_strides": Bug(
        "ewise_setitem", _ewise_setitem_contiguous, "ignores the strides"
    ),
    "broken_compact_inner_stride": Bug(
        "compact", _compact_unit_inner_stride, "assumes a contiguous last axis"
    ),
}
"""Backend name -> its single bug."""


def register() -> None:
    """Register every broken backend (idempotent)."""
    for name, bug in BROKEN.items():
        if name not in needle.backends.list_backends():
            needle.backends.register_plugin(BrokenBackend(name, bug))


register()
