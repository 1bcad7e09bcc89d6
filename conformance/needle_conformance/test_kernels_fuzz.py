"""Area ``kernels`` (continued): a fuzzer over kernel argument tuples.

Hypothesis draws argument tuples for the kernels directly: buffer sizes, dtypes (one
the backend supports, another one, or one it does not), shapes, strides and offsets,
``m``/``n``/``p``, ``reduce_size`` and convolution sizes, with huge (``2**40``,
``2**62``, ``2**63 - 1``) and negative values among them. Each call must either
succeed and match the NumPy reference, or raise ``ValueError``, ``TypeError``,
``IndexError`` or ``MemoryError`` with a message naming the kernel; it must never crash
the process, hang, or accept an invalid call silently.

In the ``thorough`` profile each call runs in a forked child process, so a crash
(SIGSEGV, SIGFPE, an abort) or a hang is reported as a failure that prints the call,
instead of killing the run. The ``ci`` profile runs the calls in-process.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from needle.backends import KERNELS, kernels_in_family

from . import _state
from ._kernel_utils import header
from .assertions import fail

pytestmark = pytest.mark.kernels
DTYPES = _state.dtypes()
ALLOWED = (ValueError, TypeError, IndexError, MemoryError)
HUGE = (2**40, 2**62, 2**63 - 1)  # never a size that could really be allocated
TIMEOUT_S = 60.0


def _settings() -> hypothesis.settings:
    base = _state.hypothesis_settings()
    return hypothesis.settings(base, max_examples=60 if _state.CHOICES.profile == "ci" else 600)


# --- a call: buffers described by (size, dtype, values), other arguments as they are ------
@dataclass
class Buf:
    """A buffer argument: ``size`` elements of ``dtype`` holding ``values``."""

    size: int
    dtype: str
    seed: int = 0

    def values(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        return rng.standard_normal(self.size)

    def code(self, var: str) -> list[str]:
        return [
            f"{var} = k.alloc({self.size}, {self.dtype!r})",
            f"k.from_numpy(np.random.default_rng({self.seed}).standard_normal({self.size}), {var})",
        ]


@dataclass
class Call:
    """One kernel call, its validity by the contract and how to check its result."""

    kernel: str
    args: list[Any]
    valid: bool | None
    """Whether the contract says the call must succeed (True) or fail (False); None where
    either is conforming (inputs larger than needed), though a result must still match."""
    expect: Callable[[list[np.ndarray]], np.ndarray] | None = None
    """The expected content of ``out`` (or the returned array) from the input values."""
    out_index: int | None = None
    notes: list[str] = field(default_factory=list)

    def repro(self, backend: str) -> str:
        lines, names = [*header(backend)], []
        for i, a in enumerate(self.args):
            if isinstance(a, Buf):
                var = f"h{i}"
                lines += a.code(var)
                names.append(var)
            else:
                names.append(repr(a))
        lines.append(f"k.{self.kernel}({', '.join(names)})")
        return "\n".join(lines)

    def describe(self) -> str:
        parts = [f"<{a.size} x {a.dtype}>" if isinstance(a, Buf) else repr(a) for a in self.args]
        return f"{self.kernel}({', '.join(parts)})"


def _build(k: Any, call: Call) -> tuple[list[Any], list[np.ndarray]]:
    """The real arguments (handles allocated and filled) and the input values."""
    args, values = [], []
    for a in call.args:
        if isinstance(a, Buf):
            h = k.alloc(a.size, a.dtype)
            v = a.values().astype(a.dtype)
            k.from_numpy(v, h)
            args.append(h)
            values.append(v.astype(np.float64))
        else:
            args.append(a)
    return args, values


def _execute(k: Any, call: Call) -> tuple[str, Any]:
    """Run the call: ("ok", result array or None) or ("raise", (type name, message, allowed))."""
    try:
        args, _ = _build(k, call)
    except Exception as exc:  # pragma: no cover - the setup uses valid calls only
        return "setup", (type(exc).__name__, str(exc), False)
    try:
        result = getattr(k, call.kernel)(*args)
    except ALLOWED as exc:
        return "raise", (type(exc).__name__, str(exc), True)
    except Exception as exc:
        return "raise", (type(exc).__name__, str(exc), False)
    if call.kernel == "to_numpy":
        return "ok", np.asarray(result, dtype=np.float64).reshape(-1)
    if call.out_index is not None:
        out = args[call.out_index]
        return "ok", np.asarray(k.to_numpy(out, (out.size,), (1,), 0), dtype=np.float64)
    return "ok", None


def _execute_isolated(k: Any, call: Call) -> tuple[str, Any]:
    """``_execute`` in a forked child: a crash or a hang becomes an outcome."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            data = pickle.dumps(_execute(k, call))
        except BaseException as exc:
            data = pickle.dumps(("raise", (type(exc).__name__, str(exc), False)))
        with os.fdopen(w, "wb") as f:
            f.write(data)
        os._exit(0)
    os.close(w)
    chunks, deadline = [], time.monotonic() + TIMEOUT_S
    with os.fdopen(r, "rb") as f:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([f], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return "hung", TIMEOUT_S
            chunk = os.read(f.fileno(), 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return "died", signal.Signals(os.WTERMSIG(status)).name
    if not chunks:
        return "died", f"exit status {os.WEXITSTATUS(status)}"
    return pickle.loads(b"".join(chunks))


def _check(k: Any, backend: str, call: Call) -> None:
    isolated = _state.CHOICES.profile == "thorough" and hasattr(os, "fork")
    kind, payload = _execute_isolated(k, call) if isolated else _execute(k, call)
    what = f"kernel {call.kernel}: fuzzed call {call.describe()}"
    repro = call.repro(backend)
    if kind == "died":
        fail(what, f"the process died ({payload}); a kernel must raise, never crash", repro)
    if kind == "hung":
        fail(what, f"no answer within {payload:.0f} s; a kernel must not hang", repro)
    if kind == "setup":
        fail(what, f"building the arguments failed: {payload[0]}: {payload[1]}", repro)
    if kind == "raise":
        name, message, allowed = payload
        if not allowed:
            fail(
                what,
                f"raised {name}: {message}; expected ValueError, TypeError, IndexError or "
                "MemoryError naming the kernel",
                repro,
            )
        if call.valid:
            fail(what, f"the call is valid by the contract but raised {name}: {message}", repro)
        if call.valid is None:
            return
        if call.kernel not in message:
            fail(what, f"raised {name} as it should, but the message {message!r} does not "
                 f"name the kernel", repro)  # fmt: skip
        return
    if call.valid is False:
        fail(
            what,
            "accepted an invalid call ("
            + "; ".join(call.notes)
            + "); it must raise ValueError, TypeError, IndexError or MemoryError",
            repro,
        )
    if call.expect is not None and payload is not None:
        _, values = _build_values(call)
        want = np.asarray(call.expect(values), dtype=np.float64).reshape(-1)
        got = payload[: want.size] if call.kernel != "to_numpy" else payload
        dtype = next(a.dtype for a in call.args if isinstance(a, Buf))
        rtol, atol = (1e-4, 1e-4) if dtype == "float32" else (1e-9, 1e-9)
        with np.errstate(all="ignore"):
            ok = got.shape == want.shape and np.allclose(
                got, want, rtol=rtol, atol=atol, equal_nan=True
            )
        if not ok:
            fail(what, f"wrong result: got {got[:8]}..., expected {want[:8]}...", repro)


def _build_values(call: Call) -> tuple[None, list[np.ndarray]]:
    return None, [
        a.values().astype(a.dtype).astype(np.float64) for a in call.args if isinstance(a, Buf)
    ]


# --- strategies ------------------------------------------------------------------------
def _other_dtype(dtype: str) -> str:
    others = [d for d in DTYPES if d != dtype]
    return others[0] if others else dtype


def dims(small: int = 5) -> st.SearchStrategy[int]:
    """A size or stride: mostly small, sometimes huge or negative."""
    return st.one_of(
        st.integers(0, small), st.integers(0, small), st.sampled_from(HUGE), st.integers(-3, -1)
    )


@st.composite
def dtypes_for(draw: Any, n: int) -> list[str]:
    """n dtypes: all the same (mostly), or one of them another supported dtype."""
    base = draw(st.sampled_from(DTYPES))
    out = [base] * n
    if n and draw(st.integers(0, 4)) == 0:
        out[draw(st.integers(0, n - 1))] = _other_dtype(base)
    return out


def _nonneg(*v: int) -> bool:
    return all(isinstance(x, int) and x >= 0 for x in v)


def _prod(v: tuple[int, ...]) -> int:
    return math.prod(v) if v else 1


@st.composite
def layout_calls(draw: Any) -> Call:
    kernel = draw(st.sampled_from(["to_numpy", "compact", "ewise_setitem", "scalar_setitem"]))
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(dims(4), min_size=ndim, max_size=ndim)))
    strides = tuple(draw(st.lists(dims(6), min_size=ndim, max_size=ndim)))
    if draw(st.integers(0, 6)) == 0:  # shape and strides of different lengths
        strides = (*strides, 1)
    offset = draw(dims(6))
    size = draw(st.integers(0, 40))
    d1, d2 = draw(dtypes_for(2))
    notes = []
    valid = len(shape) == len(strides) and _nonneg(*shape, *strides, offset)
    if not valid:
        notes.append("negative or mismatched shape/strides/offset")
    n = _prod(shape) if valid else 0
    if valid and n:
        last = offset + sum((a - 1) * s for a, s in zip(shape, strides))
        if last >= size:
            valid = False
            notes.append(f"the view reaches element {last} of a buffer of {size}")
    # Repeats through stride 0 are cheap for scalar_setitem only; other kernels need room.
    if valid and n > 10**6 and kernel != "scalar_setitem":
        valid = False
        notes.append(f"a view of {n} elements (huge)")
    huge_empty = valid and n == 0 and any(d > 10**6 for d in shape)
    expect, out_index = None, None
    if kernel == "to_numpy":
        args: list[Any] = [Buf(size, d1, 1), shape, strides, offset]
        if valid:
            expect = lambda v: KERNELS["to_numpy"].reference(v[0], shape, strides, offset)  # noqa: E731
        if n > 10**6:  # a valid but enormous copy: MemoryError (or ValueError) is right
            valid = False
        if huge_empty:  # (0, 2**62): NumPy itself cannot make that array; either is fine
            valid = None
    elif kernel == "compact":
        out_n = draw(st.sampled_from([n, n, n + 2, max(n - 1, 0)])) if n <= 10**6 else 3
        args = [Buf(size, d1, 1), Buf(out_n, d2, 2), shape, strides, offset]
        if d1 != d2:
            valid, _ = False, notes.append("dtypes differ")
        if out_n < n:
            valid, _ = False, notes.append("out smaller than the view")
        out_index = 1
        if valid:
            expect = lambda v: np.concatenate(  # noqa: E731
                [KERNELS["compact"].reference(v[0], shape, strides, offset).reshape(-1),
                 v[1][n:]]
            )  # fmt: skip
    elif kernel == "ewise_setitem":
        a_n = draw(st.sampled_from([n, n, n + 2, max(n - 1, 0)])) if n <= 10**6 else 3
        args = [Buf(a_n, d1, 1), Buf(size, d2, 2), shape, strides, offset]
        if d1 != d2:
            valid, _ = False, notes.append("dtypes differ")
        if a_n < n:
            valid, _ = False, notes.append("a smaller than the view")
        out_index = 1
        if valid and _injective(shape, strides):
            expect = _ref_call("ewise_setitem", 1, 0, n, shape, strides, offset)
    else:
        count = draw(st.sampled_from([n, n, n + 1, -1, 2**62]))
        value = draw(st.sampled_from([0.5, -2.0, float("inf"), float("nan"), 1e300]))
        args = [count, value, Buf(size, d1, 2), shape, strides, offset]
        if count != n:
            valid, _ = False, notes.append(f"size {count} is not the view's {n}")
        out_index = 2
        if valid:
            expect = lambda v: _scalar_setitem_ref(v[0], value, shape, strides, offset, d1)  # noqa: E731
    return Call(kernel, args, valid, expect, out_index, notes)


def _ref_call(
    name: str, out_i: int, a_i: int, n: int, shape: Any, strides: Any, offset: int
) -> Callable[[list[np.ndarray]], np.ndarray]:
    """The layout reference of ``name`` on (out values, first n values of a)."""

    def expect(v: list[np.ndarray]) -> np.ndarray:
        return KERNELS[name].reference(v[out_i], v[a_i][:n], shape, strides, offset)

    return expect


def _injective(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    dims_ = sorted((s, n) for n, s in zip(shape, strides) if n > 1)
    extent = 0
    for s, n in dims_:
        if s <= extent:
            return False
        extent += (n - 1) * s
    return True


def _scalar_setitem_ref(out, value, shape, strides, offset, dtype):  # type: ignore[no-untyped-def]
    """The reference with stride-0 axes collapsed (each element once)."""
    keep = [(n, s) for n, s in zip(shape, strides) if s != 0]
    sh = tuple(n for n, _ in keep) if 0 not in shape else (0,)
    st_ = tuple(s for _, s in keep) if 0 not in shape else (1,)
    with np.errstate(all="ignore"):
        v = float(np.asarray(value, dtype=dtype))
    return KERNELS["scalar_setitem"].reference(out, v, sh, st_, offset)


ELEMENTWISE = (
    *kernels_in_family("ewise_binary"),
    *kernels_in_family("scalar_binary"),
    *kernels_in_family("ewise_unary"),
)


@st.composite
def elementwise_calls(draw: Any) -> Call:
    spec = draw(st.sampled_from(ELEMENTWISE))
    n_in = 2 if spec.family == "ewise_binary" else 1
    dts = draw(dtypes_for(n_in + 1))
    n = draw(st.integers(0, 70))
    sizes = [draw(st.sampled_from([n, n, n, n + 3, max(n - 1, 0)])) for _ in range(n_in)]
    bufs = [Buf(s, d, i + 1) for i, (s, d) in enumerate(zip(sizes, dts))]
    out = Buf(n, dts[-1], 9)
    notes = []
    valid = len(set(dts)) == 1
    if not valid:
        notes.append("dtypes differ")
    if any(s < n for s in sizes):
        valid = False
        notes.append("an input smaller than out")
    either = valid and any(s > n for s in sizes)
    if spec.family == "scalar_binary":
        value = draw(st.sampled_from([0.0, -1.5, 0.1, 1e300, float("inf"), float("nan")]))
        args: list[Any] = [bufs[0], value, out]

        def expect(v: list[np.ndarray]) -> np.ndarray:
            with np.errstate(all="ignore"):
                rounded = float(np.asarray(value, dtype=dts[-1]))
                return np.asarray(spec.reference(v[0][:n], rounded)).astype(dts[-1])
    else:
        args = [*bufs, out]

        def expect(v: list[np.ndarray]) -> np.ndarray:
            with np.errstate(all="ignore"):
                return np.asarray(spec.reference(*(x[:n] for x in v[:n_in]))).astype(dts[-1])

    return Call(
        spec.name, args, None if either else valid, expect if valid else None, len(args) - 1, notes
    )


ROWS = tuple(KERNELS[n] for n in ("reduce_sum", "reduce_max", "logsumexp_last", "reduce_argmax"))


@st.composite
def row_calls(draw: Any, names: tuple[str, ...]) -> Call:
    name = draw(st.sampled_from(names))
    d1, d2 = draw(dtypes_for(2))
    rows = draw(st.integers(0, 6))
    rs = draw(st.one_of(st.integers(0, 9), st.sampled_from(HUGE), st.integers(-3, -1)))
    a_n = draw(st.sampled_from([rows * rs if 0 <= rs < 100 else 7, 5, 0]))
    out_n = a_n if name == "softmax_last" else rows
    a, out = Buf(max(a_n, 0), d1, 1), Buf(out_n, d2, 2)
    notes = []
    min_rs = 0 if name in ("reduce_sum", "logsumexp_last") else 1
    valid = d1 == d2 and rs >= min_rs
    if not valid:
        notes.append("dtypes differ or reduce_size too small")
    if name != "softmax_last" and rs > 0 and out_n * rs > a.size:
        valid = False
        notes.append(f"a holds {a.size} elements, need {out_n * rs}")
    spec = KERNELS[name]
    expect = None
    if valid and name != "softmax_last":

        def expect(v: list[np.ndarray]) -> np.ndarray:
            with np.errstate(all="ignore"):
                if out_n == 0:
                    return np.zeros(0)
                if rs == 0:
                    return np.asarray(spec.reference(np.zeros((out_n, 0)))).astype(d1)
                return np.asarray(spec.reference(v[0][: out_n * rs].reshape(out_n, rs)))

    if name == "softmax_last" and valid and rs > 0:
        r = a.size // rs

        def expect(v: list[np.ndarray]) -> np.ndarray:
            with np.errstate(all="ignore"):
                if r == 0:
                    return v[1]
                got = np.asarray(spec.reference(v[0][: r * rs].reshape(r, rs))).reshape(-1)
                return np.concatenate([got, v[1][r * rs :]])

    return Call(name, [a, out, rs], valid, expect, 1, notes)


@st.composite
def matmul_calls(draw: Any) -> Call:
    batched = draw(st.booleans())
    names = ["batch", "m", "n", "p"] if batched else ["m", "n", "p"]
    vals = {
        k_: draw(st.one_of(st.integers(0, 4), st.sampled_from(HUGE), st.integers(-2, -1)))
        for k_ in names
    }
    b_ = vals.get("batch", 1)
    m, n, p = vals["m"], vals["n"], vals["p"]
    d = draw(dtypes_for(3))
    sensible = all(0 <= v <= 4 for v in vals.values())
    nonneg = all(v >= 0 for v in vals.values())
    need = (b_ * m * n, b_ * n * p, b_ * m * p) if sensible else (3, 3, 3)
    # Huge sizes whose products are all 0 ask for no work: raising is fine, so is a no-op.
    zero_work = nonneg and not sensible and b_ * m * n == b_ * n * p == b_ * m * p == 0
    sizes = [draw(st.sampled_from([x, x, x + 1, max(x - 1, 0)])) for x in need]
    bufs = [Buf(s, dt, i + 1) for i, (s, dt) in enumerate(zip(sizes, d))]
    valid = sensible and len(set(d)) == 1 and all(s >= x for s, x in zip(sizes, need))
    notes = [] if valid else ["negative or huge sizes, short buffers or mixed dtypes"]
    kernel = "batched_matmul" if batched else "matmul"
    either = valid and any(s > x for s, x in zip(sizes, need))
    expect = None
    if valid:

        def expect(v: list[np.ndarray]) -> np.ndarray:
            x = v[0][: b_ * m * n].reshape(b_, m, n)
            y = v[1][: b_ * n * p].reshape(b_, n, p)
            return np.concatenate([(x @ y).reshape(-1), v[2][b_ * m * p :]])

    dims_ = [vals[k_] for k_ in names]
    valid_or_either = None if either or (zero_work and len(set(d)) == 1) else valid
    return Call(kernel, [*bufs, *dims_], valid_or_either, expect, 2, notes)


@st.composite
def conv_calls(draw: Any) -> Call:
    v = [
        draw(st.one_of(st.integers(0, 5), st.sampled_from(HUGE), st.integers(-2, -1)))
        for _ in range(7)
    ]
    n, h, w, c_in, kk, c_out, stride = v
    d = draw(dtypes_for(3))
    sensible = all(0 <= x <= 5 for x in v) and kk >= 1 and stride >= 1 and h >= kk and w >= kk
    zero_work = (
        all(x >= 0 for x in v)
        and not sensible
        and kk >= 1
        and stride >= 1
        and h >= kk
        and w >= kk
        and n * c_out == 0
        and c_in * c_out == 0
    )
    if sensible:
        ho, wo = (h - kk) // stride + 1, (w - kk) // stride + 1
        need = (n * h * w * c_in, kk * kk * c_in * c_out, n * ho * wo * c_out)
    else:
        need = (5, 5, 5)
    sizes = [draw(st.sampled_from([x, x, max(x - 1, 0)])) for x in need]
    bufs = [Buf(s, dt, i + 1) for i, (s, dt) in enumerate(zip(sizes, d))]
    valid = sensible and len(set(d)) == 1 and all(s >= x for s, x in zip(sizes, need))
    either = valid and any(s > x for s, x in zip(sizes, need))
    expect = None
    if valid:

        def expect(vals: list[np.ndarray]) -> np.ndarray:
            x = vals[0][: need[0]].reshape(n, h, w, c_in)
            wt = vals[1][: need[1]].reshape(kk, kk, c_in, c_out)
            got = KERNELS["conv2d_nhwc"].reference(x, wt, stride).reshape(-1)
            return np.concatenate([got, vals[2][need[2] :]])

    notes = [] if valid else ["bad sizes, short buffers or mixed dtypes"]
    valid_or_either = None if either or (zero_work and len(set(d)) == 1) else valid
    return Call("conv2d_nhwc", [*bufs, *v], valid_or_either, expect, 2, notes)


@st.composite
def alloc_calls(draw: Any) -> Call:
    size = draw(st.sampled_from([0, 3, -1, -(2**62), 2**62, 2**63 - 1]))
    dtype = draw(st.sampled_from([*DTYPES, "int7", "", "float16x"]))
    valid = 0 <= size < 2**20 and dtype in DTYPES
    return Call("alloc", [size, dtype], valid, None, None, [] if valid else ["bad size or dtype"])


# --- the tests -------------------------------------------------------------------------
def _optional(needle_device: Any, name: str, backend: str) -> None:
    if not needle_device.has_kernel(name):
        pytest.skip(f"backend {backend!r} does not declare optional kernel {name}")


@given(call=layout_calls())
@_settings()
def test_fuzz_layout(needle_kernels: Any, needle_backend_name: str, call: Call) -> None:
    """to_numpy, compact, ewise_setitem, scalar_setitem over fuzzed views."""
    _check(needle_kernels, needle_backend_name, call)


@given(call=elementwise_calls())
@_settings()
def test_fuzz_elementwise(needle_kernels: Any, needle_backend_name: str, call: Call) -> None:
    """Element-wise, scalar and unary kernels with fuzzed sizes, dtypes and scalars."""
    _check(needle_kernels, needle_backend_name, call)


@given(data=st.data())
@_settings()
def test_fuzz_rows(needle_device: Any, needle_backend_name: str, data: Any) -> None:
    """reduce_sum, reduce_max and the optional row kernels with fuzzed reduce_size."""
    names = tuple(
        s.name
        for s in (*ROWS, KERNELS["softmax_last"])
        if s.required or needle_device.has_kernel(s.name)
    )
    call = data.draw(row_calls(names))
    _check(needle_device.kernels, needle_backend_name, call)


@given(call=matmul_calls())
@_settings()
def test_fuzz_matmul(needle_device: Any, needle_backend_name: str, call: Call) -> None:
    """matmul and batched_matmul with fuzzed (batch,) m, n, p."""
    if call.kernel == "batched_matmul":
        _optional(needle_device, "batched_matmul", needle_backend_name)
    _check(needle_device.kernels, needle_backend_name, call)


@given(call=conv_calls())
@_settings()
def test_fuzz_conv2d_nhwc(needle_device: Any, needle_backend_name: str, call: Call) -> None:
    _optional(needle_device, "conv2d_nhwc", needle_backend_name)
    _check(needle_device.kernels, needle_backend_name, call)


@given(call=alloc_calls())
@_settings()
def test_fuzz_alloc(needle_kernels: Any, needle_backend_name: str, call: Call) -> None:
    _check(needle_kernels, needle_backend_name, call)
