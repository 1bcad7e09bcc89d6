"""The backend contract: the one table of kernels every needle backend provides.

This module is the single source of truth for what a backend must implement. Each kernel
is a :class:`KernelSpec` record in :data:`KERNELS`: its name, family, parameters, what it
returns, its meaning in words, a NumPy reference and the bad inputs it must reject.
Registration validates a backend's kernel table against it (presence and arity), the
conformance suite tests each record one by one, the scaffold writes its kernel bodies
from it, and ``docs/writing-a-backend.md`` documents it (``tools/gen_kernel_table.py``).

Conventions shared by every kernel
----------------------------------
* A *handle* is an opaque flat buffer returned by ``alloc(size, dtype)``. It has an
  integer attribute ``size`` (number of elements) and a string attribute ``dtype``
  (``"float32"`` or ``"float64"``, or another dtype the backend declares).
* Kernels use destination-passing style: the core allocates ``out`` and the kernel
  fills it. Kernels return ``None`` unless stated otherwise.
* ``shape``, ``strides`` and ``offset`` are tuples/ints counted in **elements**, not
  bytes. Strides are non-negative in everything the core passes today.
* "Compact" means the first ``n`` elements of a handle, in row-major order.
* Element-wise kernels take compact inputs of equal size and the same dtype and write
  ``out.size`` elements. Scalar kernels take a compact handle and a Python float.
* Comparison kernels write 1.0 where the relation holds and 0.0 elsewhere, in the
  dtype of the inputs (NaN compares unequal, so ``ewise_ne`` is 1.0 there).
* Every kernel must check sizes, dtypes and bounds before touching memory and raise
  ``ValueError``/``TypeError``/``IndexError`` with a message naming the kernel
  (``MemoryError`` where a size cannot be allocated). Size products must not overflow
  silently: a product past int64 is a ``ValueError``.

IEEE semantics and edge rows
----------------------------
* Results are the IEEE 754 results of the operation *in the buffer's dtype*, as NumPy
  gives them: ``x / 0`` is ``±inf`` and ``0 / 0`` is NaN; NaN and ``±inf`` propagate
  through every arithmetic, unary and reduction kernel, wherever they sit in a row;
  overflow gives ``±inf`` in the buffer's dtype (``exp(100)`` is finite in float64).
* A scalar kernel first rounds ``value`` to the buffer's dtype and then computes in that
  dtype (``float32 [0.1, 0.2] == 0.1`` is ``[1, 0]``).
* ``power`` is C's ``pow`` applied element by element: a negative base with an integer
  exponent is finite (``(-2) ** 3 == -8``), with a non-integer exponent NaN; the scalar
  form is the element-wise form with ``b`` filled with ``value`` (no ``sqrt`` shortcut).
* Comparisons are exact (no tolerance); any comparison with NaN is 0 except ``ne``.
  ``maximum`` is NaN when either input is NaN.
* Edge rows are stated per kernel: ``reduce_sum`` of size-0 rows is 0, ``logsumexp_last``
  of size-0 or all ``-inf`` rows is ``-inf``, ``reduce_argmax`` reports the first NaN.

Memory discipline and aliasing
------------------------------
* A kernel writes only ``out`` (and only its first ``out.size`` elements, or the view it
  is given); every other handle it receives is left unchanged.
* A kernel that raises leaves ``out`` unchanged: all checks come before the first write.
* ``out`` may be the very same handle as an input of the same size and dtype in the
  ``ewise_binary``, ``scalar_binary`` and ``ewise_unary`` kernels, ``ewise_where`` and
  ``softmax_last`` (in-place updates); the result must equal the one with a separate
  ``out``, as if every input were read before ``out`` is written. In every other kernel
  ``out`` is a fresh buffer that shares no memory with an input. Handles never overlap
  partially: a handle is a whole buffer.
* ``to_numpy`` returns a new array that owns its memory (later kernel calls do not
  change it, and writing to it does not change the buffer); ``from_numpy`` copies (the
  caller may change or free its array afterwards).

NumPy references (``KernelSpec.reference``), by family
------------------------------------------------------
The reference takes NumPy arrays in place of handles, already shaped, and returns the
NumPy array the kernel's ``out`` must hold (in the shape given below; flatten it to
compare with ``out``). Scalar parameters that only describe shapes (``m``, ``n``,
``reduce_size``, ...) are implied by the array shapes and are not passed.

* ``buffer``: ``to_numpy`` is ``f(flat, shape, strides, offset)`` (the strided view, as
  a new array); ``fill`` is ``f(out_flat, value)``; ``astype`` is ``f(a_flat, dtype)``;
  ``alloc`` and ``from_numpy`` have none.
* ``layout``: ``compact`` is ``f(flat, shape, strides, offset) -> array of shape``;
  ``ewise_setitem`` is ``f(out_flat, a, shape, strides, offset) -> new out_flat``;
  ``scalar_setitem`` is ``f(out_flat, value, shape, strides, offset) -> new out_flat``.
* ``ewise_binary``: ``f(a, b)``; ``scalar_binary``: ``f(a, value)``; ``ewise_unary``:
  ``f(a)``. Same shape in, same shape out; comparisons give 1.0/0.0 in a's dtype.
* ``reduce``: ``f(rows)`` with ``rows`` of shape ``(out.size, reduce_size)`` -> 1-D
  result over axis 1.
* ``matmul``: ``f(a, b)`` with ``a`` of shape ``(m, n)``, ``b`` of ``(n, p)``.
* ``optional``: ``batched_matmul`` ``f(a, b)`` on ``(batch, m, n)``, ``(batch, n, p)``;
  ``logsumexp_last``, ``reduce_argmax`` ``f(rows) -> 1-D``; ``softmax_last``
  ``f(rows) -> rows' shape``; ``conv2d_nhwc`` ``f(x, w, stride)`` with ``x`` NHWC and
  ``w`` KKIO; ``ewise_where`` ``f(cond, a, b)``; ``synchronize`` has none;
  ``matmul_t`` ``f(a, b, trans_a, trans_b)`` and ``batched_matmul_t`` the same on stacks,
  with ``a`` and ``b`` shaped as stored (``(n, m)`` when ``trans_a``); ``reduce_sum_mid``
  and ``reduce_max_mid`` ``f(a)`` with ``a`` of shape ``(outer, reduce, inner)`` ->
  ``(outer, inner)``; ``program_compile`` ``f(instructions)`` -> the list of calls and
  ``program_run`` ``f(kernels, program)`` (makes the calls through a kernel table);
  ``program_set_scalars`` ``f(program, slots, values)`` edits that list in place.
  ``take_rows``, ``scatter_add_rows``, ``lstm_cell``, ``lstm_cell_backward``,
  ``lstm_layer``, ``lstm_layer_backward``, ``rnn_layer``, ``rnn_layer_backward``,
  ``attention_softmax``, ``attention_forward``, ``attention_backward``,
  ``conv2d_nhwc_pad``, ``conv2d_nhwc_backward_input`` and ``conv2d_nhwc_backward_weight``
  take the arguments their semantics name (see each record); ``buffer_view`` is
  ``f(flat, offset, size)`` -> the slice sharing ``flat``'s memory;
  ``bernoulli_mt19937`` is ``f(key, pos, p, n, dtype)`` -> ``(values, new pos)``: the n
  values out must hold (in ``dtype``), with ``key`` (the NumPy uint32 state array, not
  a handle) advanced in place as the kernel advances it.

Bump :data:`CONTRACT_VERSION` (major) whenever a required kernel is added, removed or
changes meaning; ``tests/test_contract_snapshot.py`` guards against silent changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

CONTRACT_VERSION: tuple[int, int] = (1, 7)
"""(major, minor). A plugin whose major version differs is refused."""

FAMILIES: tuple[str, ...] = (
    "buffer",
    "layout",
    "ewise_binary",
    "scalar_binary",
    "ewise_unary",
    "reduce",
    "matmul",
    "optional",
)
"""Every value :attr:`KernelSpec.family` may take."""


# --- records ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorCase:
    """An input a conforming kernel must reject, before touching memory.

    ``make_args(kernels, dtype, other_dtype)`` builds the bad arguments with the
    backend's own ``alloc``/``fill``/``from_numpy`` (``other_dtype`` is a second dtype
    the backend supports, or ``None``); calling the kernel with them must raise
    ``exception`` (or one of ``also``) with a message naming the kernel.
    """

    description: str
    exception: type[Exception]
    make_args: Callable[[Any, str, str | None], tuple[Any, ...]]
    tag: str
    """Short identifier, unique per kernel (``"short_input"``); test ids use it."""
    also: tuple[type[Exception], ...] = ()
    """Other exception types a conforming kernel may raise instead (e.g. an
    out-of-bounds view is ``IndexError`` by preference, ``ValueError`` accepted)."""
    needs_other_dtype: bool = False
    """The case needs a second supported dtype (skip it where the backend has one)."""

    @property
    def exceptions(self) -> tuple[type[Exception], ...]:
        """Every exception type that counts as a correct rejection."""
        return (self.exception, *self.also)


@dataclass(frozen=True)
class KernelSpec:
    """One kernel of the contract."""

    name: str
    family: str
    params: tuple[str, ...]
    """Parameter names in call order."""
    returns: str | None
    """``None`` (fills ``out``), ``"handle"`` (``alloc``), ``"ndarray"`` (``to_numpy``),
    ``"program"``, ``"producer"`` (``dlpack_export``), ``"import"`` (``dlpack_import``:
    ``(handle, shape, strides, offset)``) or ``"int"`` (``bernoulli_mt19937``: the new
    generator position)."""
    semantics: str
    required: bool
    reference: Callable[..., Any] | None = None
    """NumPy reference; the calling convention per family is in the module docstring."""
    errors: tuple[ErrorCase, ...] = ()
    inputs: tuple[str, ...] = ()
    """Test-data kinds for the array inputs (``"normal"``, ``"positive"``, ``"nonzero"``,
    ``"ints"``) that keep the reference well defined and the comparison meaningful."""
    scalars: tuple[float, ...] = ()
    """Scalar values worth testing (scalar kernels)."""
    exact: bool = False
    """Results must match the reference exactly (comparisons, max)."""
    numpy_function: str | None = None
    """The NumPy function the reference applies, as code (``"np.add"``), for code
    generators; element-wise, scalar and unary kernels only."""

    @property
    def arity(self) -> int:
        """How many arguments the kernel takes."""
        return len(self.params)

    @property
    def signature(self) -> str:
        """``"ewise_add(a, b, out)"``."""
        return f"{self.name}({', '.join(self.params)})"

    @property
    def typed_signature(self) -> str:
        """The signature with parameter and return types, as the guide shows it."""
        types = {**_PARAM_TYPES, **_KERNEL_PARAM_TYPES.get(self.name, {})}
        params = ", ".join(f"{p}: {types[p]}" for p in self.params)
        names = {"ndarray": "numpy.ndarray", "import": "tuple[handle, shape, strides, offset]"}
        ret = f" -> {names.get(self.returns or '', self.returns)}"
        return f"{self.name}({params})" + (ret if self.returns else "")

    @property
    def doc(self) -> str:
        """Signature and meaning in one text (the values of :data:`REQUIRED_KERNELS`)."""
        return f"{self.typed_signature}. {self.semantics}"


_PARAM_TYPES: dict[str, str] = {
    **dict.fromkeys(("a", "b", "out", "x", "w", "cond"), "handle"),
    **dict.fromkeys(
        ("size", "reduce_size", "m", "n", "p", "batch", "h", "w_", "c_in", "k", "c_out"), "int"
    ),
    "stride": "int",
    "padding": "int",
    "offset": "int",
    "shape": "tuple[int, ...]",
    "strides": "tuple[int, ...]",
    "value": "float",
    "dtype": "str",
    "src": "numpy.ndarray",
    **dict.fromkeys(("trans_a", "trans_b", "outer", "reduce", "inner"), "int"),
    "instructions": "list[tuple[str, tuple]]",
    "program": "program",
    "slots": "list[tuple[int, int]]",
    "values": "list[float]",
    # fused layers (issue 12, item 3)
    **dict.fromkeys(("dy", "dx", "stats", "dwb", "labels", "g", "dw"), "handle"),
    **dict.fromkeys(("c", "rows", "d"), "int"),
    "eps": "float",
    # sequence layers (issue 12, item 3)
    **dict.fromkeys(("ids", "gates", "cell", "h_out", "dh", "dc", "d_gates", "d_cell"), "handle"),
    **dict.fromkeys(("n_ids", "n_rows", "width", "t_q", "t_k", "causal"), "int"),
    **dict.fromkeys(
        ("gx", "w_hh", "h0", "c0", "hs", "cs", "dhs", "dh_n", "dc_n", "dgx", "dw_hh", "dh0", "dc0"),
        "handle",
    ),
    "t": "int",
    "relu": "int",
    "scale": "float",
    # fused attention (issue 12)
    **dict.fromkeys(("q", "keys", "values", "mask", "probs", "d_out", "dq", "dk", "dv"), "handle"),
    **dict.fromkeys(("heads", "d_v", "layout"), "int"),
    # DLPack interop (issue 17)
    "obj": "a DLPack producer",
    "copy": "bool | None",
    # random draws (bernoulli_mt19937; its p is a probability, see below)
    "key": "numpy.ndarray (uint32, 624)",
    "pos": "int",
}


# Parameters whose type differs in one kernel from the table above (c_out is a channel
# count in the convolutions and a buffer in lstm_cell; p a size in the products and a
# probability in bernoulli_mt19937; values the floats of program_set_scalars and a buffer
# in the attention kernels).
_KERNEL_PARAM_TYPES: dict[str, dict[str, str]] = {
    "lstm_cell": {"c_out": "handle"},
    "bernoulli_mt19937": {"p": "float"},
    "program_set_scalars": {"values": "list[float]"},
}


# --- NumPy references ------------------------------------------------------------------
def _strided(flat: np.ndarray, shape: Sequence[int], strides: Sequence[int], offset: int) -> Any:
    """The (writeable) view of ``flat`` with element strides; empty shapes give empties."""
    shape = tuple(shape)
    if 0 in shape:
        return np.empty(shape, dtype=flat.dtype)
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(
        flat[int(offset) :], shape, tuple(int(s) * item for s in strides)
    )


def _ref_view(flat: Any, shape: Sequence[int], strides: Sequence[int], offset: int) -> Any:
    return np.array(_strided(np.asarray(flat), shape, strides, offset))


def _ref_ewise_setitem(
    out: Any, a: Any, shape: Sequence[int], strides: Sequence[int], offset: int
) -> Any:
    result = np.array(out)
    if int(np.prod(shape, dtype=np.int64)):
        _strided(result, shape, strides, offset)[...] = np.asarray(a).reshape(tuple(shape))
    return result


def _ref_scalar_setitem(
    out: Any, value: float, shape: Sequence[int], strides: Sequence[int], offset: int
) -> Any:
    result = np.array(out)
    if int(np.prod(shape, dtype=np.int64)):
        _strided(result, shape, strides, offset)[...] = value
    return result


def _quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` under ``np.errstate(all="ignore")`` (IEEE results, no warnings)."""

    def ref(*args: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args)

    ref.__name__ = getattr(fn, "__name__", "reference")
    ref.__doc__ = f"NumPy reference: {ref.__name__} (IEEE results, no warnings)."
    return ref


def _comparison(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A NumPy comparison as 1.0/0.0 in the dtype of the first input."""

    def ref(a: Any, b: Any) -> Any:
        a = np.asarray(a)
        return fn(a, b).astype(a.dtype if a.dtype.kind == "f" else np.float64)

    ref.__name__ = fn.__name__
    ref.__doc__ = f"NumPy reference: {fn.__name__} as 1.0/0.0."
    return ref


def _logsumexp_last(rows: Any) -> Any:
    rows = np.asarray(rows)
    if rows.shape[1] == 0:
        return np.full(rows.shape[0], -np.inf, dtype=rows.dtype)
    with np.errstate(all="ignore"):
        m = rows.max(axis=1, keepdims=True)
        shift = np.where(np.isfinite(m), m, 0)
        return (np.log(np.exp(rows - shift).sum(axis=1, keepdims=True)) + shift)[:, 0]


def _softmax_last(rows: Any) -> Any:
    rows = np.asarray(rows)
    with np.errstate(all="ignore"):
        e = np.exp(rows - rows.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def _conv2d_nhwc(x: Any, w: Any, stride: int) -> Any:
    x, w = np.asarray(x), np.asarray(w)
    n, h, w_, _ = x.shape
    k, c_out = w.shape[0], w.shape[3]
    ho, wo = (h - k) // stride + 1, (w_ - k) // stride + 1
    out = np.zeros((n, ho, wo, c_out), dtype=np.result_type(x, w))
    for i in range(k):
        for j in range(k):
            patch = x[
                :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ]
            out += patch @ w[i, j]
    return out


def _pad_hw(x: Any, padding: int) -> Any:
    return np.pad(np.asarray(x), ((0, 0), (padding, padding), (padding, padding), (0, 0)))


def _conv2d_nhwc_pad(x: Any, w: Any, stride: int, padding: int) -> Any:
    """conv2d_nhwc of x zero-padded by ``padding`` on H and W."""
    return _conv2d_nhwc(_pad_hw(x, padding), w, stride)


def _conv2d_nhwc_backward_input(g: Any, w: Any, h: int, w_: int, stride: int, padding: int) -> Any:
    """dx (n, h, w_, c_in) of _conv2d_nhwc_pad given its output gradient g (n, ho, wo, c_out)."""
    g, w = np.asarray(g), np.asarray(w)
    n, ho, wo, _ = g.shape
    k, c_in = w.shape[0], w.shape[2]
    dxp = np.zeros((n, h + 2 * padding, w_ + 2 * padding, c_in), dtype=np.result_type(g, w))
    for i in range(k):
        for j in range(k):
            rows = slice(i, i + stride * (ho - 1) + 1, stride)
            cols = slice(j, j + stride * (wo - 1) + 1, stride)
            dxp[:, rows, cols] += g @ w[i, j].T
    return dxp[:, padding : padding + h, padding : padding + w_]


def _conv2d_nhwc_backward_weight(x: Any, g: Any, k: int, stride: int, padding: int) -> Any:
    """dw (k, k, c_in, c_out) of _conv2d_nhwc_pad given its input x and output gradient g."""
    xp, g = _pad_hw(x, padding), np.asarray(g)
    _, ho, wo, c_out = g.shape
    dw = np.zeros((k, k, xp.shape[3], c_out), dtype=np.result_type(xp, g))
    for i in range(k):
        for j in range(k):
            patch = xp[
                :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ]
            dw[i, j] = np.tensordot(patch, g, axes=([0, 1, 2], [0, 1, 2]))
    return dw


def _matmul_t(a: Any, b: Any, trans_a: int, trans_b: int) -> Any:
    """op(a) @ op(b) on (stacks of) matrices shaped as stored; op swaps the last two axes."""
    return np.matmul(
        np.swapaxes(a, -1, -2) if trans_a else a, np.swapaxes(b, -1, -2) if trans_b else b
    )


def _program_compile(instructions: Any) -> Any:
    """The calls as a list of ``(kernel_name, args)``: what a program holds."""
    return [(str(name), tuple(args)) for name, args in instructions]


def _program_run(kernels: Any, program: Any) -> None:
    """Make the calls one by one through a kernel table: what a program run must equal."""
    for name, args in program:
        getattr(kernels, name)(*args)


def _program_set_scalars(program: Any, slots: Any, values: Any) -> None:
    """Replace argument ``j`` of instruction ``i`` for each ``(i, j)`` slot."""
    for (i, j), value in zip(slots, values):
        name, args = program[i]
        program[i] = (name, (*args[:j], float(value), *args[j + 1 :]))


def _dlpack_export(view: Any) -> Any:
    """The strided view as a DLPack producer: a NumPy view is one."""
    return view


def _dlpack_import(obj: Any, copy: bool | None) -> Any:
    """The producer's data as an array sharing its memory (unless copy=True)."""
    return np.from_dlpack(obj, copy=copy)


def _buffer_view(flat: Any, offset: int, size: int) -> Any:
    """Elements ``offset .. offset + size`` of ``flat``, sharing its memory (a slice)."""
    return np.asarray(flat)[int(offset) : int(offset) + int(size)]


def _bernoulli_mt19937(key: Any, pos: int, p: float, n: int, dtype: Any) -> tuple[Any, int]:
    """``RandomState.random_sample(n) <= p`` from the MT19937 state (key, pos), in
    ``dtype``, and the new pos; ``key`` is advanced in place."""
    rs = np.random.RandomState()
    rs.set_state(("MT19937", key, pos, 0, 0.0))
    values = (rs.random_sample(n) <= p).astype(dtype)
    state = rs.get_state(legacy=False)["state"]
    key[...] = state["key"]
    return values, int(state["pos"])


def _reduce_argmax(rows: Any) -> Any:
    rows = np.asarray(rows)
    return np.argmax(rows, axis=1).astype(rows.dtype if rows.dtype.kind == "f" else np.float64)


def _where(cond: Any, a: Any, b: Any) -> Any:
    return np.where(np.asarray(cond) != 0, a, b)


def _batchnorm_forward(x: Any, w: Any, b: Any, eps: float) -> tuple[Any, Any]:
    """(out (m, c), stats (2, c)): per-column batch norm and [mean; biased variance]."""
    x = np.asarray(x)
    mean, var = x.mean(axis=0), x.var(axis=0)
    return (x - mean) / np.sqrt(var + eps) * w + b, np.stack([mean, var])


def _batchnorm_backward(x: Any, dy: Any, w: Any, stats: Any, eps: float) -> tuple[Any, Any]:
    """(dx (m, c), dwb (2, c)) of _batchnorm_forward given dy and its stats."""
    x, dy = np.asarray(x), np.asarray(dy)
    r = 1.0 / np.sqrt(stats[1] + eps)
    xh = (x - stats[0]) * r
    dw, db = (dy * xh).sum(axis=0), dy.sum(axis=0)
    dx = w * r * (dy - db / len(x) - xh * dw / len(x))
    return dx, np.stack([dw, db])


def _layernorm_forward(x: Any, w: Any, b: Any, eps: float) -> tuple[Any, Any]:
    """(out (rows, d), stats (2, rows)): per-row layer norm and [mean; biased variance]."""
    x = np.asarray(x)
    mean, var = x.mean(axis=1), x.var(axis=1)
    return (x - mean[:, None]) / np.sqrt(var[:, None] + eps) * w + b, np.stack([mean, var])


def _layernorm_backward(x: Any, dy: Any, w: Any, stats: Any, eps: float) -> tuple[Any, Any]:
    """(dx (rows, d), dwb (2, d)) of _layernorm_forward given dy and its stats."""
    x, dy = np.asarray(x), np.asarray(dy)
    r = (1.0 / np.sqrt(stats[1] + eps))[:, None]
    xh = (x - stats[0][:, None]) * r
    g, d = dy * w, x.shape[1]
    dx = r / d * (d * g - g.sum(axis=1, keepdims=True) - xh * (g * xh).sum(axis=1, keepdims=True))
    return dx, np.stack([(dy * xh).sum(axis=0), dy.sum(axis=0)])


def _softmax_xent(a: Any, labels: Any) -> Any:
    """Per-row logsumexp(row) - row[label]."""
    a = np.asarray(a)
    return _logsumexp_last(a) - a[np.arange(len(a)), np.asarray(labels).astype(np.int64)]


def _softmax_xent_backward(a: Any, labels: Any, g: Any) -> Any:
    """(softmax(rows) - one_hot(labels)) * g[0]."""
    p = _softmax_last(a)
    p[np.arange(len(p)), np.asarray(labels).astype(np.int64)] -= 1.0
    return p * np.asarray(g).reshape(-1)[0]


def _take_rows(w: Any, ids: Any) -> Any:
    """w[ids]: rows of w (n_rows, width) for ids (n_ids,) -> (n_ids, width)."""
    return np.asarray(w)[np.asarray(ids).astype(np.int64)]


def _scatter_add_rows(g: Any, ids: Any, n_rows: int) -> Any:
    """zeros (n_rows, width) with row k of g (n_ids, width) added at row ids[k]."""
    g = np.asarray(g)
    out = np.zeros((n_rows, g.shape[1]), dtype=g.dtype)
    np.add.at(out, np.asarray(ids).astype(np.int64), g)
    return out


def _lstm_parts(gates: Any, cell: Any) -> tuple[Any, ...]:
    z = np.asarray(gates)
    h = z.shape[1] // 4
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    i, f, o = sig(z[:, :h]), sig(z[:, h : 2 * h]), sig(z[:, 3 * h :])
    return i, f, np.tanh(z[:, 2 * h : 3 * h]), o, np.asarray(cell)


def _lstm_cell(gates: Any, cell: Any) -> tuple[Any, Any]:
    """(h' (n, h), c' (n, h)) of one LSTM step from gates (n, 4h) in the order i, f, g, o."""
    i, f, g, o, c = _lstm_parts(gates, cell)
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def _lstm_cell_backward(gates: Any, cell: Any, dh: Any, dc: Any) -> tuple[Any, Any]:
    """(d_gates (n, 4h), d_cell (n, h)) of _lstm_cell given the adjoints dh, dc."""
    i, f, g, o, c = _lstm_parts(gates, cell)
    t = np.tanh(f * c + i * g)
    k = dc + dh * o * (1 - t * t)
    parts = [k * g * i * (1 - i), k * c * f * (1 - f), k * i * (1 - g * g), dh * t * o * (1 - o)]
    return np.concatenate(parts, axis=1), k * f


def _lstm_layer(gx: Any, w_hh: Any, h0: Any, c0: Any) -> tuple[Any, Any, Any]:
    """(hs, cs (t, n, h), gates (t, 4h, n)) of an LSTM layer over gx (t, n, 4h): step s
    runs _lstm_cell on gx[s] + h_{s-1} @ w_hh; gates[s] holds its activated gates (n, 4h),
    transposed."""
    gx, w = np.asarray(gx), np.asarray(w_hh)
    h, c = np.asarray(h0), np.asarray(c0)
    hs, cs, acts = [], [], []
    for x in gx:
        z = x + h @ w
        i, f, g, o, _ = _lstm_parts(z, c)
        h, c = _lstm_cell(z, c)
        hs.append(h)
        cs.append(c)
        acts.append(np.concatenate([i, f, g, o], axis=1).T)
    t, n, h4 = gx.shape
    shape = (t, n, h4 // 4)
    return (np.array(hs).reshape(shape), np.array(cs).reshape(shape),
            np.array(acts).reshape(t, h4, n))  # fmt: skip


def _lstm_layer_backward(
    w_hh: Any, h0: Any, c0: Any, hs: Any, cs: Any, gates: Any, dhs: Any, dh_n: Any, dc_n: Any
) -> tuple[Any, Any, Any, Any]:
    """(dgx (t, n, 4h), dw_hh (h, 4h), dh0, dc0 (n, h)) of _lstm_layer given the adjoints
    dhs of hs and dh_n, dc_n of the final state (hs[-1], cs[-1])."""
    w, gates, hs, cs = (np.asarray(a) for a in (w_hh, gates, hs, cs))
    t, n, h = hs.shape
    dh_carry, dc_carry = np.asarray(dh_n), np.asarray(dc_n)
    dgx = np.zeros((t, n, 4 * h), dtype=np.result_type(gates, dh_carry))
    for s in reversed(range(t)):
        i, f, g, o = (gates[s].T[:, k * h : (k + 1) * h] for k in range(4))
        c_prev = cs[s - 1] if s else np.asarray(c0)
        tc = np.tanh(cs[s])
        dh = np.asarray(dhs)[s] + dh_carry
        dc = dc_carry + dh * o * (1 - tc * tc)
        parts = [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dc * i * (1 - g * g),
                 dh * tc * o * (1 - o)]  # fmt: skip
        dgx[s] = np.concatenate(parts, axis=1)
        dc_carry = dc * f
        dh_carry = dgx[s] @ w.T
    h_prev = np.concatenate([np.asarray(h0)[None], hs[:-1]]) if t else np.zeros((0, n, h))
    dw = h_prev.reshape(t * n, h).T @ dgx.reshape(t * n, 4 * h)
    return dgx, dw, dh_carry, dc_carry


def _rnn_layer(gx: Any, w_hh: Any, h0: Any, relu: int) -> Any:
    """hs (t, n, h) of an Elman layer: hs[s] = act(gx[s] + hs[s-1] @ w_hh), hs[-1] = h0."""
    h, hs = np.asarray(h0), []
    for x in np.asarray(gx):
        pre = x + h @ np.asarray(w_hh)
        h = np.maximum(pre, 0) if relu else np.tanh(pre)
        hs.append(h)
    return np.array(hs).reshape(np.shape(gx))


def _rnn_layer_backward(w_hh: Any, h0: Any, hs: Any, dhs: Any, relu: int) -> tuple[Any, Any, Any]:
    """(dgx (t, n, h), dw_hh (h, h), dh0 (n, h)) of _rnn_layer given the adjoint dhs of hs."""
    w, hs, dhs = np.asarray(w_hh), np.asarray(hs), np.asarray(dhs)
    t, n, h = hs.shape
    dgx = np.zeros(hs.shape, dtype=np.result_type(hs, dhs))
    dh = np.zeros((n, h), dtype=dgx.dtype)
    for s in reversed(range(t)):
        d = dhs[s] + dh
        dgx[s] = d * (hs[s] > 0) if relu else d * (1 - hs[s] * hs[s])
        dh = dgx[s] @ w.T
    h_prev = np.concatenate([np.asarray(h0)[None], hs[:-1]]) if t else np.zeros((0, n, h))
    return dgx, h_prev.reshape(t * n, h).T @ dgx.reshape(t * n, h), dh


def _attention_softmax(a: Any, scale: float, causal: int) -> Any:
    """softmax over the last axis of a (batch, t_q, t_k) * scale (+ the causal mask)."""
    a = np.asarray(a)
    t_q, t_k = a.shape[1:]
    s = a * scale + (np.triu(np.ones((t_q, t_k)), k=1 + t_k - t_q) * -1e9 if causal else 0)
    return _softmax_last(s.reshape(-1, t_k)).reshape(a.shape)


def _attention_forward(q: Any, k: Any, v: Any, mask: Any, scale: float, causal: int) -> Any:
    """(out, probs) for q (batch, heads, t_q, d), k (.., t_k, d), v (.., t_k, d_v), mask
    None or (batch, heads, t_q, t_k): probs = attention_softmax of q k^T, out = (probs
    [* mask]) @ v (layout 0; a layout-1 kernel's buffers hold the same after swapping the
    head and time axes of q, k, v and out)."""
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    b, h, t_q, _ = q.shape
    scores = (q @ np.swapaxes(k, -1, -2)).reshape(b * h, t_q, k.shape[2])
    p = _attention_softmax(scores, scale, causal).reshape(b, h, t_q, k.shape[2])
    return (p if mask is None else p * np.asarray(mask)) @ v, p


def _attention_backward(
    q: Any, k: Any, v: Any, probs: Any, mask: Any, d_out: Any, scale: float
) -> tuple[Any, Any, Any]:
    """(dq, dk, dv) of _attention_forward given d_out (layout 0, shapes as there)."""
    q, k, v, p, g = (np.asarray(x) for x in (q, k, v, probs, d_out))
    w = p if mask is None else p * np.asarray(mask)
    d_p = g @ np.swapaxes(v, -1, -2)
    if mask is not None:
        d_p = d_p * np.asarray(mask)
    d_s = p * (d_p - (d_p * p).sum(axis=-1, keepdims=True)) * scale
    return d_s @ k, np.swapaxes(d_s, -1, -2) @ q, np.swapaxes(w, -1, -2) @ g


# --- error cases -----------------------------------------------------------------------
def _buf(k: Any, n: int, dtype: str | None) -> Any:
    """A backend buffer of ``n`` ones (``dtype`` None only where a case needs no other one)."""
    if dtype is None:
        raise ValueError("this error case needs a second dtype")
    h = k.alloc(n, dtype)
    k.fill(h, 1.0)
    return h


_OOB = (ValueError,)  # an out-of-bounds view: IndexError preferred, ValueError accepted


def _err(
    tag: str,
    description: str,
    exception: type[Exception],
    make_args: Callable[[Any, str, str | None], tuple[Any, ...]],
    *,
    also: tuple[type[Exception], ...] = (),
    needs_other_dtype: bool = False,
) -> ErrorCase:
    return ErrorCase(description, exception, make_args, tag, also, needs_other_dtype)


def _dtype_mismatch(description: str, extra: tuple[Any, ...] = ()) -> ErrorCase:
    """Inputs of two dtypes (any of the three error types is accepted, as before)."""

    def make(k: Any, d: str, o: str | None) -> tuple[Any, ...]:
        return (k.alloc(4, d), k.alloc(4, o), k.alloc(4, d), *extra)

    return _err(
        "dtype_mismatch",
        description,
        TypeError,
        make,
        also=(ValueError, IndexError),
        needs_other_dtype=True,
    )


def _mt_case(
    tag: str,
    description: str,
    exception: type[Exception],
    key: Callable[[], Any] = lambda: np.arange(624, dtype=np.uint32),
    pos: int = 0,
    p: Any = 0.5,
    n: int = 4,
) -> ErrorCase:
    """A bad call of bernoulli_mt19937 (key, pos, p, out of 8 elements, n)."""
    return _err(tag, description, exception, lambda k, d, o: (key(), pos, p, _buf(k, 8, d), n))


def _read_only_key() -> Any:
    key = np.arange(624, dtype=np.uint32)
    key.flags.writeable = False
    return key


# --- the table -------------------------------------------------------------------------
_BUFFER = (
    KernelSpec(
        "alloc",
        "buffer",
        ("size", "dtype"),
        "handle",
        "A new uninitialised buffer of `size` elements. size may be 0. "
        "Unsupported dtype -> TypeError.",
        True,
        errors=(
            _err("negative", "negative size", ValueError, lambda k, d, o: (-1, d)),
            _err("bad_dtype", "unknown dtype", TypeError, lambda k, d, o: (3, "not-a-dtype")),
        ),
    ),
    KernelSpec(
        "from_numpy",
        "buffer",
        ("src", "out"),
        None,
        "Copy a 1-D C-contiguous NumPy array of out's size into out, converting it to "
        "out's dtype (a cast, as NumPy assignment does); out keeps no reference to src.",
        True,
        errors=(
            _err(
                "size",
                "source larger than out",
                ValueError,
                lambda k, d, o: (np.zeros(5, d), _buf(k, 4, d)),
            ),
        ),
    ),
    KernelSpec(
        "to_numpy",
        "buffer",
        ("a", "shape", "strides", "offset"),
        "ndarray",
        "A new NumPy array (owning its memory) holding the strided view of a; writing to "
        "it leaves a unchanged.",
        True,
        reference=_ref_view,
        errors=(
            _err(
                "out_of_bounds",
                "view reaches past the buffer",
                IndexError,
                lambda k, d, o: (_buf(k, 4, d), (2, 3), (3, 1), 0),
                also=_OOB,
            ),
        ),
    ),
    KernelSpec(
        "fill",
        "buffer",
        ("out", "value"),
        None,
        "Set every element of out to value, rounded to out's dtype.",
        True,
        reference=lambda out, value: np.full_like(np.asarray(out), value),
    ),
    KernelSpec(
        "astype",
        "buffer",
        ("a", "out"),
        None,
        "Convert the first out.size elements of a to out's dtype (a and out may differ "
        "in dtype; size must match).",
        True,
        reference=lambda a, dtype: np.asarray(a).astype(dtype),
        errors=(
            _err(
                "short_input",
                "a smaller than out",
                ValueError,
                lambda k, d, o: (_buf(k, 3, d), _buf(k, 5, d)),
            ),
        ),
    ),
)

_LAYOUT = (
    KernelSpec(
        "compact",
        "layout",
        ("a", "out", "shape", "strides", "offset"),
        None,
        "Write the strided view (shape, strides, offset) of a into out in row-major order. "
        "a and out have the same dtype (TypeError otherwise); out holds at least the "
        "view's element count. Views may repeat elements (stride 0).",
        True,
        reference=_ref_view,
        errors=(
            _err(
                "out_of_bounds",
                "view reaches past a",
                IndexError,
                lambda k, d, o: (_buf(k, 6, d), _buf(k, 6, d), (2, 3), (3, 1), 1),
                also=_OOB,
            ),
            _err(
                "out_too_small",
                "out smaller than the view",
                ValueError,
                lambda k, d, o: (_buf(k, 6, d), _buf(k, 5, d), (2, 3), (3, 1), 0),
            ),
            _err(
                "dtype_mismatch",
                "a and out of different dtypes",
                TypeError,
                lambda k, d, o: (_buf(k, 6, d), _buf(k, 6, o), (2, 3), (3, 1), 0),
                needs_other_dtype=True,
            ),
        ),
    ),
    KernelSpec(
        "ewise_setitem",
        "layout",
        ("a", "out", "shape", "strides", "offset"),
        None,
        "Write the compact a into the strided view (shape, strides, offset) of out. a and "
        "out have the same dtype (TypeError otherwise) and a holds at least the view's "
        "element count (ValueError otherwise).",
        True,
        reference=_ref_ewise_setitem,
        errors=(
            _err(
                "out_of_bounds",
                "view reaches past out",
                IndexError,
                lambda k, d, o: (_buf(k, 6, d), _buf(k, 6, d), (2, 3), (4, 1), 0),
                also=_OOB,
            ),
            _err(
                "short_input",
                "a smaller than the view",
                ValueError,
                lambda k, d, o: (_buf(k, 5, d), _buf(k, 6, d), (2, 3), (3, 1), 0),
            ),
            _err(
                "dtype_mismatch",
                "a and out of different dtypes",
                TypeError,
                lambda k, d, o: (_buf(k, 6, o), _buf(k, 6, d), (2, 3), (3, 1), 0),
                needs_other_dtype=True,
            ),
        ),
    ),
    KernelSpec(
        "scalar_setitem",
        "layout",
        ("size", "value", "out", "shape", "strides", "offset"),
        None,
        "Set every element of the strided view of out to value (rounded to out's dtype); "
        "size is the view's element count (ValueError otherwise). A view with stride-0 "
        "axes writes each element once (no time proportional to the repeats).",
        True,
        reference=_ref_scalar_setitem,
        errors=(
            _err(
                "out_of_bounds",
                "view reaches past out",
                IndexError,
                lambda k, d, o: (6, 0.0, _buf(k, 5, d), (2, 3), (3, 1), 0),
                also=_OOB,
            ),
            _err(
                "size_mismatch",
                "size differs from the view's element count",
                ValueError,
                lambda k, d, o: (5, 0.0, _buf(k, 6, d), (2, 3), (3, 1), 0),
            ),
        ),
    ),
)

_REDUCE_MATMUL = (
    KernelSpec(
        "reduce_sum",
        "reduce",
        ("a", "out", "reduce_size"),
        None,
        "out[i] = sum(a[i*reduce_size:(i+1)*reduce_size]) for i < out.size. reduce_size 0 "
        "gives 0; NaN anywhere in a row gives NaN, inf + -inf gives NaN.",
        True,
        reference=lambda rows: np.asarray(rows).sum(axis=1),
        errors=(
            _err(
                "short_input",
                "a smaller than out.size * reduce_size",
                ValueError,
                lambda k, d, o: (_buf(k, 5, d), _buf(k, 2, d), 3),
            ),
        ),
    ),
    KernelSpec(
        "reduce_max",
        "reduce",
        ("a", "out", "reduce_size"),
        None,
        "Like reduce_sum with max. reduce_size >= 1. A NaN anywhere in a row gives NaN; "
        "a row of all -inf gives -inf.",
        True,
        reference=lambda rows: np.asarray(rows).max(axis=1),
        exact=True,
        errors=(
            _err(
                "zero_size",
                "reduce_size 0",
                ValueError,
                lambda k, d, o: (_buf(k, 0, d), _buf(k, 2, d), 0),
            ),
        ),
    ),
    KernelSpec(
        "matmul",
        "matmul",
        ("a", "b", "out", "m", "n", "p"),
        None,
        "Compact (m, n) @ (n, p) -> compact (m, p), for any m, n, p (one row, one column, "
        "odd remainders). n may be 0 (out is zeros).",
        True,
        reference=lambda a, b: np.asarray(a) @ np.asarray(b),
        errors=(
            _err(
                "short_input",
                "a smaller than m * n",
                ValueError,
                lambda k, d, o: (_buf(k, 5, d), _buf(k, 6, d), _buf(k, 4, d), 2, 3, 2),
            ),
            _dtype_mismatch("a and b of different dtypes", (2, 2, 2)),
        ),
    ),
)

# name: (meaning in words, NumPy function, comparison?, input kinds, scalar test values)
_BINARY: dict[str, tuple[str, Callable[..., Any], bool, tuple[str, str], tuple[float, ...]]] = {
    "add": ("a + b", np.add, False, ("normal", "normal"), (1.25, -3.0)),
    "sub": ("a - b", np.subtract, False, ("normal", "normal"), (1.25, -3.0)),
    "mul": ("a * b", np.multiply, False, ("normal", "normal"), (1.25, -3.0)),
    "div": (
        "a / b (IEEE: x / 0 is +-inf, 0 / 0 is NaN)",
        np.divide,
        False,
        ("normal", "nonzero"),
        (2.5, -0.75),
    ),
    "power": (
        "a ** b, as C's pow (a negative base with an integer exponent is finite, with a "
        "non-integer one NaN)",
        np.power,
        False,
        ("positive", "normal"),
        (2.0, 0.5, -1.5, 3.0),
    ),
    "maximum": (
        "max(a, b) (NaN if either is NaN)",
        np.maximum,
        False,
        ("normal", "normal"),
        (1.25, -3.0),
    ),
    "eq": ("1.0 if a == b else 0.0", np.equal, True, ("ints", "ints"), (1.0, -0.5, 0.0, 2.25)),
    "ne": ("1.0 if a != b else 0.0", np.not_equal, True, ("ints", "ints"), (1.0, -0.5, 0.0, 2.25)),
    "lt": ("1.0 if a < b else 0.0", np.less, True, ("ints", "ints"), (1.0, -0.5, 0.0, 2.25)),
    "le": ("1.0 if a <= b else 0.0", np.less_equal, True, ("ints", "ints"), (1.0, -0.5, 0.0, 2.25)),
    "gt": ("1.0 if a > b else 0.0", np.greater, True, ("ints", "ints"), (1.0, -0.5, 0.0, 2.25)),
    "ge": (
        "1.0 if a >= b else 0.0",
        np.greater_equal,
        True,
        ("ints", "ints"),
        (1.0, -0.5, 0.0, 2.25),
    ),
}

# name: (meaning in words, NumPy function, input kind)
_UNARY: dict[str, tuple[str, Callable[..., Any], str]] = {
    "neg": ("-a", np.negative, "normal"),
    "abs": ("|a|", np.abs, "normal"),
    "log": ("natural logarithm (NaN for a < 0, -inf for +-0)", np.log, "positive"),
    "exp": ("e ** a (inf past the dtype's range, 0 below it)", np.exp, "normal"),
    "tanh": ("hyperbolic tangent (+-1 for large |a|, never NaN for finite a)", np.tanh, "normal"),
    "sqrt": ("square root (NaN for a < 0)", np.sqrt, "positive"),
    "sin": ("sine", np.sin, "normal"),
    "cos": ("cosine", np.cos, "normal"),
}

_EWISE_ERRORS: dict[str, tuple[ErrorCase, ...]] = {
    "ewise_add": (
        _err(
            "short_input",
            "a smaller than out",
            ValueError,
            lambda k, d, o: (_buf(k, 3, d), _buf(k, 5, d), _buf(k, 5, d)),
        ),
        _err(
            "not_a_buffer",
            "a NumPy array instead of a handle",
            TypeError,
            lambda k, d, o: (np.ones(5, d), _buf(k, 5, d), _buf(k, 5, d)),
        ),
    ),
    "ewise_mul": (_dtype_mismatch("a and b of different dtypes"),),
    "scalar_mul": (
        _err(
            "short_input",
            "a smaller than out",
            ValueError,
            lambda k, d, o: (_buf(k, 2, d), 2.0, _buf(k, 5, d)),
        ),
    ),
    "ewise_exp": (
        _err(
            "short_input",
            "a smaller than out",
            ValueError,
            lambda k, d, o: (_buf(k, 2, d), _buf(k, 5, d)),
        ),
    ),
}


def _scalar_form(ref: Callable[..., Any]) -> Callable[..., Any]:
    """The scalar reference: ``ref(a, b)`` with ``b`` an array of ``value`` like ``a``.

    NumPy takes shortcuts for some scalar exponents (``x ** 0.5`` is ``sqrt``, which gives
    NaN for ``-inf`` where C's ``pow`` gives ``inf``); the array form has none.
    """

    def scalar_ref(a: Any, value: float) -> Any:
        a = np.asarray(a)
        return ref(a, np.full(a.shape, value, dtype=a.dtype))

    scalar_ref.__name__ = getattr(ref, "__name__", "reference")
    scalar_ref.__doc__ = ref.__doc__
    return scalar_ref


def _elementwise() -> list[KernelSpec]:
    specs = []
    for name, (words, fn, comparison, kinds, values) in _BINARY.items():
        ewise_ref = _comparison(fn) if comparison else _quiet(fn)
        for prefix, family, params, text, inputs in (
            ("ewise", "ewise_binary", ("a", "b", "out"), words, kinds),
            (
                "scalar",
                "scalar_binary",
                ("a", "value", "out"),
                re.sub(r"\bb\b", "value", words),
                kinds[:1],
            ),
        ):
            kname = f"{prefix}_{name}"
            ref = ewise_ref if prefix == "ewise" else _scalar_form(ewise_ref)
            more = " value is first rounded to a's dtype." if prefix == "scalar" else ""
            specs.append(
                KernelSpec(
                    kname,
                    family,
                    params,
                    None,
                    f"out = {text}, element-wise.{more}",
                    True,
                    reference=ref,
                    errors=_EWISE_ERRORS.get(kname, ()),
                    inputs=inputs,
                    scalars=values if prefix == "scalar" else (),
                    exact=comparison,
                    numpy_function=f"np.{fn.__name__}",
                )
            )
    for name, (words, fn, kind) in _UNARY.items():
        kname = f"ewise_{name}"
        specs.append(
            KernelSpec(
                kname,
                "ewise_unary",
                ("a", "out"),
                None,
                f"out = {words}, element-wise.",
                True,
                reference=_quiet(fn),
                errors=_EWISE_ERRORS.get(kname, ()),
                inputs=(kind,),
                numpy_function=f"np.{fn.__name__}",
            )
        )
    return specs


_OPTIONAL = (
    KernelSpec(
        "batched_matmul",
        "optional",
        ("a", "b", "out", "batch", "m", "n", "p"),
        None,
        "Compact (batch, m, n) @ (batch, n, p) -> compact (batch, m, p), for any sizes "
        "(one-row and one-column operands included).",
        False,
        reference=lambda a, b: np.matmul(a, b),
    ),
    KernelSpec(
        "logsumexp_last",
        "optional",
        ("a", "out", "reduce_size"),
        None,
        "Numerically stable log(sum(exp(row))) over compact rows of reduce_size elements "
        "(max-shifted). reduce_size 0 and rows of all -inf give -inf; a +inf in a row "
        "gives inf; a NaN gives NaN.",
        False,
        reference=_logsumexp_last,
    ),
    KernelSpec(
        "softmax_last",
        "optional",
        ("a", "out", "reduce_size"),
        None,
        "Stable softmax (max-shifted) over compact rows of reduce_size >= 1 elements; "
        "out has a's size and may be a. Large finite inputs never overflow; a row holding "
        "+inf or NaN gives NaN, as the reference does.",
        False,
        reference=_softmax_last,
    ),
    KernelSpec(
        "conv2d_nhwc",
        "optional",
        ("x", "w", "out", "n", "h", "w_", "c_in", "k", "c_out", "stride"),
        None,
        "Valid (unpadded) convolution of compact NHWC x with compact KKIO weights w into "
        "compact (n, (h-k)//stride+1, (w_-k)//stride+1, c_out). h and w_ may differ; any "
        "c_in and c_out.",
        False,
        reference=_conv2d_nhwc,
    ),
    KernelSpec(
        "conv2d_nhwc_pad",
        "optional",
        ("x", "w", "out", "n", "h", "w_", "c_in", "k", "c_out", "stride", "padding"),
        None,
        "conv2d_nhwc of compact NHWC x zero-padded by padding >= 0 on both sides of H and W "
        "(no padded copy needed): out is compact (n, ho, wo, c_out) with ho = (h + 2 padding "
        "- k) // stride + 1 and wo alike; k >= 1, stride >= 1 and the padded image at least "
        "k x k, else ValueError; out may be x or w. The reference is f(x, w, stride, padding).",
        False,
        reference=_conv2d_nhwc_pad,
    ),
    KernelSpec(
        "conv2d_nhwc_backward_input",
        "optional",
        ("g", "w", "dx", "n", "h", "w_", "c_in", "k", "c_out", "stride", "padding"),
        None,
        "Input gradient of conv2d_nhwc_pad: compact dx (n, h, w_, c_in) = the sum, over "
        "output pixels (oh, ow) and kernel taps (i, j), of g[:, oh, ow] @ w[i, j]^T added at "
        "input pixel (oh stride + i - padding, ow stride + j - padding) when that lies in "
        "the image (zeros where no tap lands). g is compact (n, ho, wo, c_out), w KKIO; "
        "geometry as conv2d_nhwc_pad; dx must be a buffer other than g and w (ValueError). "
        "The reference is f(g, w, h, w_, stride, padding).",
        False,
        reference=_conv2d_nhwc_backward_input,
    ),
    KernelSpec(
        "conv2d_nhwc_backward_weight",
        "optional",
        ("x", "g", "dw", "n", "h", "w_", "c_in", "k", "c_out", "stride", "padding"),
        None,
        "Weight gradient of conv2d_nhwc_pad: compact dw (k, k, c_in, c_out), dw[i, j] = the "
        "sum over images and output pixels (oh, ow) of outer(xp[:, oh stride + i, ow stride "
        "+ j], g[:, oh, ow]) with xp the zero-padded x. x compact NHWC, g compact (n, ho, wo, "
        "c_out); geometry as conv2d_nhwc_pad; dw must be a buffer other than x and g "
        "(ValueError). The reference is f(x, g, k, stride, padding).",
        False,
        reference=_conv2d_nhwc_backward_weight,
    ),
    KernelSpec(
        "ewise_where",
        "optional",
        ("cond", "a", "b", "out"),
        None,
        "out = a where cond != 0 else b (a NaN cond selects a). cond is a handle of the "
        "same dtype and size as a and b (1.0/0.0 as the comparisons write them).",
        False,
        reference=_where,
    ),
    KernelSpec(
        "reduce_argmax",
        "optional",
        ("a", "out", "reduce_size"),
        None,
        "Index (as a float in a's dtype) of the first maximum of each compact row; a NaN "
        "counts as the maximum (the first NaN's index). reduce_size >= 1.",
        False,
        reference=_reduce_argmax,
    ),
    KernelSpec(
        "synchronize",
        "optional",
        (),
        None,
        "Wait for queued device work (for timing).",
        False,
    ),
    # --- issue 12: copy-free backward passes and replay ---
    KernelSpec(
        "matmul_t",
        "optional",
        ("a", "b", "out", "m", "n", "p", "trans_a", "trans_b"),
        None,
        "out (m, p) = op(a) @ op(b) with compact operands: a is stored (m, n), or (n, m) "
        "and read transposed when trans_a is 1; b is stored (n, p), or (p, n) when trans_b "
        "is 1. Flags other than 0/1 -> ValueError. So `a.T @ g` and `g @ b.T` need no copy.",
        False,
        reference=_matmul_t,
    ),
    KernelSpec(
        "batched_matmul_t",
        "optional",
        ("a", "b", "out", "batch", "m", "n", "p", "trans_a", "trans_b"),
        None,
        "matmul_t over batch compact products: a holds batch blocks of m*n elements, b of "
        "n*p, out of m*p, each stored as matmul_t says.",
        False,
        reference=_matmul_t,
    ),
    KernelSpec(
        "reduce_sum_mid",
        "optional",
        ("a", "out", "outer", "reduce", "inner"),
        None,
        "out (outer, inner) = sum over axis 1 of compact a (outer, reduce, inner): sums "
        "over leading or middle axes without a permuting copy. reduce 0 gives 0.",
        False,
        reference=lambda a: np.asarray(a).sum(axis=1),
    ),
    KernelSpec(
        "reduce_max_mid",
        "optional",
        ("a", "out", "outer", "reduce", "inner"),
        None,
        "Like reduce_sum_mid with max (NaN propagates). reduce >= 1.",
        False,
        reference=lambda a: np.asarray(a).max(axis=1),
        exact=True,
    ),
    KernelSpec(
        "program_compile",
        "optional",
        ("instructions",),
        "program",
        "Check a recorded kernel sequence once and return an opaque program for "
        "program_run. instructions is a list of (kernel_name, args) pairs, args a tuple of "
        "this backend's handles, ints, floats and tuples of ints: exactly the calls "
        "`getattr(kernels, kernel_name)(*args)` would make. A bad instruction (unknown "
        "kernel, wrong arity or argument type, sizes the kernel would refuse) raises "
        "ValueError naming its index and kernel. The program keeps its handles alive.",
        False,
        reference=_program_compile,
    ),
    KernelSpec(
        "program_run",
        "optional",
        ("program",),
        None,
        "Run every instruction of a program from program_compile, in order; the results "
        "are bit-identical to making the calls one by one.",
        False,
        reference=_program_run,
    ),
    KernelSpec(
        "program_set_scalars",
        "optional",
        ("program", "slots", "values"),
        None,
        "Change float arguments of a program from program_compile between runs (a "
        "learning rate, a bias correction): slots[k] = (instruction index, argument "
        "index) gets values[k] for the next program_run calls. The argument must be one "
        "the kernel takes as a float. A length mismatch or a slot that is not a float "
        "argument raises ValueError, an instruction index out of range IndexError, a "
        "value that is not a number TypeError; nothing changes when any slot is bad.",
        False,
        reference=_program_set_scalars,
    ),
    # --- issue 12: fused layers (batch norm, layer norm, softmax cross-entropy) ---
    KernelSpec(
        "batchnorm_forward",
        "optional",
        ("x", "w", "b", "out", "stats", "m", "c", "eps"),
        None,
        "Training batch norm of compact x (m, c) per column, m >= 1: stats (2, c) gets the "
        "column means and biased variances, out (m, c) = (x - mean) / sqrt(var + eps) * w "
        "+ b with w, b of c elements. Deterministic (the same bits for any thread count). "
        "The reference returns (out, stats).",
        False,
        reference=_batchnorm_forward,
    ),
    KernelSpec(
        "batchnorm_backward",
        "optional",
        ("x", "dy", "w", "stats", "dx", "dwb", "m", "c", "eps"),
        None,
        "Gradients of batchnorm_forward given dy (m, c) and its stats: dwb (2, c) = "
        "[sum(dy * xh), sum(dy)] over the rows, dx (m, c) = w r (dy - db/m - xh dw/m) with "
        "r = 1/sqrt(var + eps), xh = (x - mean) r. The reference returns (dx, dwb).",
        False,
        reference=_batchnorm_backward,
    ),
    KernelSpec(
        "layernorm_forward",
        "optional",
        ("x", "w", "b", "out", "stats", "rows", "d", "eps"),
        None,
        "Layer norm of each row of compact x (rows, d), d >= 1: stats (2, rows) gets the row "
        "means and biased variances, out = (x - mean) / sqrt(var + eps) * w + b with w, b "
        "of d elements. The reference returns (out, stats).",
        False,
        reference=_layernorm_forward,
    ),
    KernelSpec(
        "layernorm_backward",
        "optional",
        ("x", "dy", "w", "stats", "dx", "dwb", "rows", "d", "eps"),
        None,
        "Gradients of layernorm_forward given dy (rows, d) and its stats: with g = dy * w, "
        "dx = r/d (d g - sum(g) - xh sum(g xh)) per row; dwb (2, d) = [sum(dy * xh), "
        "sum(dy)] over the rows (summed in row order). The reference returns (dx, dwb).",
        False,
        reference=_layernorm_backward,
    ),
    KernelSpec(
        "softmax_xent",
        "optional",
        ("a", "labels", "out", "n", "k"),
        None,
        "Cross-entropy per row: out (n) = logsumexp(row) - row[label] for compact logits a "
        "(n, k), k >= 1, and labels (n) holding class indices as whole numbers in the "
        "logits' dtype; a label outside [0, k) or not whole -> IndexError (before writing).",
        False,
        reference=_softmax_xent,
    ),
    KernelSpec(
        "softmax_xent_backward",
        "optional",
        ("a", "labels", "g", "out", "n", "k"),
        None,
        "Gradient of softmax_xent rows: out (n, k) = (softmax(row) - one_hot(label)) * "
        "g[0], g a one-element handle (the upstream scale, on the device). Labels are "
        "checked as in softmax_xent.",
        False,
        reference=_softmax_xent_backward,
    ),
    # --- issue 12: sequence layers (embedding rows, LSTM cell, attention) ---
    KernelSpec(
        "take_rows",
        "optional",
        ("w", "ids", "out", "n_ids", "n_rows", "width"),
        None,
        "Row gather: out (n_ids, width) = rows ids of compact w (n_rows, width); ids holds "
        "n_ids row indices as whole numbers in w's dtype. An id that is not a whole number "
        "in [0, n_rows) (NaN included) -> IndexError naming the kernel and the id, before "
        "writing. The reference is f(w, ids).",
        False,
        reference=_take_rows,
    ),
    KernelSpec(
        "scatter_add_rows",
        "optional",
        ("g", "ids", "out", "n_ids", "n_rows", "width"),
        None,
        "Adjoint of take_rows: out (n_rows, width) = zeros, then row k of compact g (n_ids, "
        "width) added at row ids[k] for k = 0, 1, ... in that order (repeated ids sum in "
        "increasing position order, so the result is deterministic). Ids checked as in "
        "take_rows. The reference is f(g, ids, n_rows).",
        False,
        reference=_scatter_add_rows,
    ),
    KernelSpec(
        "lstm_cell",
        "optional",
        ("gates", "cell", "h_out", "c_out", "n", "h"),
        None,
        "One LSTM step: compact pre-activation gates (n, 4h) hold the input, forget, cell "
        "and output gates in that order per row; with cell the previous state (n, h), "
        "c_out = sigmoid(f) cell + sigmoid(i) tanh(g) and h_out = sigmoid(o) tanh(c_out). "
        "The reference returns (h_out, c_out).",
        False,
        reference=_lstm_cell,
    ),
    KernelSpec(
        "lstm_cell_backward",
        "optional",
        ("gates", "cell", "dh", "dc", "d_gates", "d_cell", "n", "h"),
        None,
        "Gradients of lstm_cell given the adjoints dh, dc (n, h) of h_out and c_out: with "
        "t = tanh(c_out) and k = dc + dh o (1 - t^2), d_gates (n, 4h) = [k g i(1-i), "
        "k cell f(1-f), k i (1-g^2), dh t o(1-o)] (activated gates i, f, g, o) and d_cell = "
        "k f. The reference returns (d_gates, d_cell).",
        False,
        reference=_lstm_cell_backward,
    ),
    KernelSpec(
        "lstm_layer",
        "optional",
        ("gx", "w_hh", "h0", "c0", "hs", "cs", "gates", "t", "n", "h"),
        None,
        "An LSTM layer over t steps: for s = 0 .. t-1, with h_{-1} = h0 and c_{-1} = c0 "
        "(n, h), the pre-activation gates gx[s] + h_{s-1} @ w_hh (gx compact (t, n, 4h), "
        "the input projection with the biases, gates in the order i, f, g, o as in "
        "lstm_cell; w_hh (h, 4h)) go through lstm_cell's gate math to give hs[s] and cs[s] "
        "(t, n, h); gates (t, 4h, n) receives every step's activated gates [sigmoid(i), "
        "sigmoid(f), tanh(g), sigmoid(o)] (n, 4h) transposed (what lstm_layer_backward "
        "reads: the layout suits a recurrence on transposed states). Outputs are "
        "fresh buffers. The reference is f(gx, w_hh, h0, c0) -> (hs, cs, gates).",
        False,
        reference=_lstm_layer,
    ),
    KernelSpec(
        "lstm_layer_backward",
        "optional",
        (
            "w_hh",
            "h0",
            "c0",
            "hs",
            "cs",
            "gates",
            "dhs",
            "dh_n",
            "dc_n",
            "dgx",
            "dw_hh",
            "dh0",
            "dc0",
            "t",
            "n",
            "h",
        ),
        None,
        "Gradients of lstm_layer from its inputs w_hh, h0, c0, its outputs hs, cs, gates and "
        "the adjoints dhs (t, n, h) of hs and dh_n, dc_n (n, h) of the final state hs[t-1], "
        "cs[t-1]: backwards over the steps, dh = dhs[s] + (adjoint carried from step s+1, "
        "dh_n at s = t-1) and dc likewise go through lstm_cell_backward's formulas (with "
        "the activated gates) to give dgx[s] (the adjoint of the pre-activation gates, so of "
        "gx[s]), the carried dc = dc f and dh = dgx[s] @ w_hh^T; dh0 and dc0 (n, h) are the "
        "adjoints carried past step 0 and dw_hh (h, 4h) = [h0, hs[:-1]]^T @ dgx over all "
        "steps (zeros when t, n or h is 0). Outputs are fresh buffers. The reference is "
        "f(w_hh, h0, c0, hs, cs, gates, dhs, dh_n, dc_n) -> (dgx, dw_hh, dh0, dc0).",
        False,
        reference=_lstm_layer_backward,
    ),
    KernelSpec(
        "rnn_layer",
        "optional",
        ("gx", "w_hh", "h0", "hs", "t", "n", "h", "relu"),
        None,
        "An Elman RNN layer over t steps: hs (t, n, h) with hs[s] = act(gx[s] + hs[s-1] @ "
        "w_hh) for s = 0 .. t-1, hs[-1] meaning h0 (n, h); gx (t, n, h) is the input "
        "projection with the biases, w_hh (h, h); act is tanh (relu 0) or max(x, 0) (relu 1; "
        "other values -> ValueError). hs is a fresh buffer. The reference is f(gx, w_hh, h0, "
        "relu).",
        False,
        reference=_rnn_layer,
    ),
    KernelSpec(
        "rnn_layer_backward",
        "optional",
        ("w_hh", "h0", "hs", "dhs", "dgx", "dw_hh", "dh0", "t", "n", "h", "relu"),
        None,
        "Gradients of rnn_layer given the adjoint dhs (t, n, h) of hs (the final state's "
        "adjoint included in dhs[t-1]): backwards over the steps, dgx[s] = (dhs[s] + carried "
        "dh) * act'(hs[s]) (1 - hs^2 for tanh, 1 where hs > 0 else 0 for relu), carried dh = "
        "dgx[s] @ w_hh^T; dh0 (n, h) is the adjoint carried past step 0 and dw_hh (h, h) = "
        "[h0, hs[:-1]]^T @ dgx (zeros when t, n or h is 0). Outputs are fresh buffers. The "
        "reference is f(w_hh, h0, hs, dhs, relu) -> (dgx, dw_hh, dh0).",
        False,
        reference=_rnn_layer_backward,
    ),
    KernelSpec(
        "attention_softmax",
        "optional",
        ("a", "out", "batch", "t_q", "t_k", "scale", "causal"),
        None,
        "Attention probabilities: for compact scores a (batch, t_q, t_k), t_k >= 1, out = "
        "softmax over the last axis of a * scale, plus -1e9 where key j > i + t_k - t_q "
        "when causal is 1 (the causal mask of query i; causal is 0 or 1, else ValueError). "
        "out may be a. The reference is f(a, scale, causal).",
        False,
        reference=_attention_softmax,
    ),
    KernelSpec(
        "attention_forward",
        "optional",
        (
            "q",
            "keys",
            "values",
            "mask",
            "out",
            "probs",
            "batch",
            "heads",
            "t_q",
            "t_k",
            "d",
            "d_v",
            "layout",
            "causal",
            "scale",
        ),
        None,
        "Fused multi-head attention with k = keys, v = values: probs (batch, heads, t_q, t_k) "
        "= softmax over the keys of q k^T * scale, plus -1e9 where key j > i + t_k - t_q when "
        "causal is 1 (as attention_softmax), and out = (probs * mask) @ v, or probs @ v when "
        "mask is an empty buffer (size 0). layout 0: q (batch, heads, t_q, d), k (batch, "
        "heads, t_k, d), v (batch, heads, t_k, d_v), out (batch, heads, t_q, d_v); layout 1: "
        "the same with the head and time axes swapped (q (batch, t_q, heads, d), ..., out "
        "(batch, t_q, heads, d_v)), the layout of a (B, T, heads * d) projection. All "
        "compact; t_k >= 1; layout and causal 0 or 1, else ValueError; out and probs must be "
        "new buffers "
        "(neither an input nor each other). The reference is f(q, k, v, mask, scale, "
        "causal) on layout-0 arrays (mask None for none) -> (out, probs).",
        False,
        reference=_attention_forward,
    ),
    KernelSpec(
        "attention_backward",
        "optional",
        (
            "q",
            "keys",
            "values",
            "probs",
            "mask",
            "d_out",
            "dq",
            "dk",
            "dv",
            "batch",
            "heads",
            "t_q",
            "t_k",
            "d",
            "d_v",
            "layout",
            "causal",
            "scale",
        ),
        None,
        "Gradients of attention_forward (k = keys, v = values): given its inputs, its probs "
        "and the adjoint d_out "
        "of out (out's layout), with w = probs [* mask], dv = w^T d_out, dP = (d_out v^T) "
        "[* mask] and dS = probs (dP - rowsum(dP probs)) * scale: dq = dS k, dk = dS^T q, "
        "written in q's, k's and v's layout. causal is the forward's (keys it masked have "
        "probability 0 and may be skipped). Checks as attention_forward; dq, dk, dv must be "
        "new buffers. The reference is f(q, k, v, probs, mask, d_out, scale) on layout-0 "
        "arrays -> (dq, dk, dv).",
        False,
        reference=_attention_backward,
    ),
    KernelSpec(
        "dlpack_export",
        "optional",
        ("a", "shape", "strides", "offset"),
        "producer",
        "A DLPack producer for the strided view (shape, strides, offset, in elements) of a, "
        "sharing a's memory: an object with __dlpack__(stream=None, max_version=None, "
        "dl_device=None, copy=None) and __dlpack_device__() as the Python array API "
        "standard defines them (versioned capsules when the consumer's max_version allows). "
        "Ownership: the producer and every capsule taken from it keep a's memory alive; the "
        "capsule's deleter releases that reference. The reference is f(view): the NumPy view.",
        False,
        reference=_dlpack_export,
    ),
    KernelSpec(
        "dlpack_import",
        "optional",
        ("obj", "copy"),
        "import",
        "Consume the DLPack producer obj (calls its __dlpack__) and return (handle, shape, "
        "strides, offset), strides and offset in elements and non-negative. copy=None: share "
        "the producer's memory when its device, dtype and layout allow, else copy; copy=False: "
        "share or raise BufferError saying why; copy=True: always copy. Ownership: a shared "
        "handle keeps the producer's memory alive and releases it (the capsule's deleter) when "
        "the handle dies. The reference is f(obj, copy) -> the NumPy array np.from_dlpack gives.",
        False,
        reference=_dlpack_import,
    ),
    # --- issue 12: memory planning of replayed steps ---
    KernelSpec(
        "buffer_view",
        "optional",
        ("a", "offset", "size"),
        "handle",
        "A new handle of `size` elements over a's memory from element `offset` (no copy): "
        "writes through either handle are seen by the other, and the view keeps a's memory "
        "alive for as long as it lives (a may be a view itself). offset * itemsize must be "
        "a multiple of 64 bytes (a view of a 64-byte aligned buffer starts on a 64-byte "
        "boundary), offset >= 0, size >= 0 and offset + size <= a.size, else ValueError; "
        "a that is not this backend's handle, or offset/size that are not ints, -> "
        "TypeError. Kernels may treat distinct handles as distinct memory: a caller that "
        "passes one call views that overlap (other than the same handle twice) gets "
        "unspecified values, never an access outside the buffers. needle.compile uses it "
        "to lay a replay's temporaries out in one arena, and never gives an instruction "
        "outputs that overlap its inputs. The reference is f(flat, offset, size): the "
        "NumPy slice.",
        False,
        reference=_buffer_view,
        errors=(
            _err(
                "misaligned",
                "offset not on a 64-byte boundary",
                ValueError,
                lambda k, d, o: (_buf(k, 64, d), 1, 4),
            ),
            _err(
                "past_end",
                "view reaches past the buffer",
                ValueError,
                lambda k, d, o: (_buf(k, 64, d), 16, 64),
            ),
            _err(
                "negative_size",
                "negative size",
                ValueError,
                lambda k, d, o: (_buf(k, 64, d), 0, -1),
            ),
            _err(
                "negative_offset",
                "negative offset",
                ValueError,
                lambda k, d, o: (_buf(k, 64, d), -16, 4),
            ),
            _err(
                "not_a_handle",
                "a NumPy array in place of a handle",
                TypeError,
                lambda k, d, o: (np.zeros(64, d), 0, 4),
            ),
        ),
    ),
    # --- dropout masks drawn from NumPy's generator state ---
    KernelSpec(
        "bernoulli_mt19937",
        "optional",
        ("key", "pos", "p", "out", "n"),
        "int",
        "Bernoulli draws from NumPy's legacy generator: out[i] = 1.0 if u_i <= p else 0.0 "
        "for i < n (elements past n untouched), u_0, u_1, ... the doubles "
        "RandomState.random_sample draws from the MT19937 state (key, pos) as "
        "np.random.get_state() holds it: u = ((w0 >> 5) * 67108864.0 + (w1 >> 6)) / "
        "9007199254740992.0 from two consecutive tempered 32-bit outputs (a pair may "
        "straddle a twist). key is a writeable C-contiguous NumPy uint32 array of shape "
        "(624,), advanced in place; pos in [0, 624] (624: twist before the next output); "
        "returns the new pos, so np.random.set_state(('MT19937', key, pos)) continues "
        "where np.random.rand(n) would have left the generator. A NaN p gives zeros. "
        "out is float32 or float64 with at least n elements. A key of another dtype or "
        "type, or a p that is not a number, -> TypeError; another shape, a strided or "
        "read-only key, pos outside [0, 624], n < 0 or n > out.size -> ValueError; all "
        "before anything is written. The reference is f(key, pos, p, n, dtype) -> "
        "(values, new pos).",
        False,
        reference=_bernoulli_mt19937,
        exact=True,
        errors=(
            _mt_case(
                "key_dtype",
                "an int64 key",
                TypeError,
                key=lambda: np.arange(624, dtype=np.int64),
            ),
            _mt_case("key_list", "a list as key", TypeError, key=lambda: list(range(624))),
            _mt_case(
                "key_size",
                "a key of 623 words",
                ValueError,
                key=lambda: np.arange(623, dtype=np.uint32),
            ),
            _mt_case(
                "key_strided",
                "a strided key",
                ValueError,
                key=lambda: np.arange(1248, dtype=np.uint32)[::2],
            ),
            _mt_case("key_read_only", "a read-only key", ValueError, key=_read_only_key),
            _mt_case("pos_past", "pos 625", ValueError, pos=625),
            _mt_case("pos_negative", "pos -1", ValueError, pos=-1),
            _mt_case("p_text", "a string as p", TypeError, p="0.5"),
            _mt_case("n_negative", "negative n", ValueError, n=-1),
            _mt_case("n_past_out", "n larger than out", ValueError, n=9),
        ),
    ),
)

KERNELS: dict[str, KernelSpec] = {
    s.name: s for s in (*_BUFFER, *_LAYOUT, *_REDUCE_MATMUL, *_elementwise(), *_OPTIONAL)
}
"""Every kernel of the contract by name: the required ones, then the optional ones."""

REQUIRED_KERNELS: dict[str, str] = {n: s.doc for n, s in KERNELS.items() if s.required}
"""Name -> signature and meaning of each required kernel (derived from :data:`KERNELS`)."""

OPTIONAL_KERNELS: dict[str, str] = {n: s.doc for n, s in KERNELS.items() if not s.required}
"""Name -> signature and meaning of each optional kernel (derived from :data:`KERNELS`)."""


def kernels_in_family(family: str) -> tuple[KernelSpec, ...]:
    """The records of ``family`` (one of :data:`FAMILIES`), in table order."""
    if family not in FAMILIES:
        raise ValueError(f"unknown kernel family {family!r}; families: {', '.join(FAMILIES)}")
    return tuple(s for s in KERNELS.values() if s.family == family)


# --- the typed view of a kernel table --------------------------------------------------
class HandlePtr(int):
    """A buffer address: an int that can also be called, as the course's ``h.ptr()``.

    Backends return one from their handles' ``ptr`` property (``int(h.ptr)`` and
    ``h.ptr()`` both give the address of the first element).
    """

    __slots__ = ()

    def __call__(self) -> int:
        return int(self)


class Handle(Protocol):
    """A flat device buffer as the core sees it."""

    @property
    def size(self) -> int: ...

    @property
    def dtype(self) -> str: ...


_Ints = Sequence[int]


@runtime_checkable
class KernelTable(Protocol):
    """What ``needle_backend_load`` returns and ``Device`` holds: every required kernel.

    Optional kernels, when declared in ``BackendInfo.optional_kernels``, are further
    attributes with the signatures of their :data:`KERNELS` records. A test keeps this
    protocol equal to :data:`KERNELS` (names and arity).
    """

    # buffers
    def alloc(self, size: int, dtype: str) -> Handle: ...
    def from_numpy(self, src: np.ndarray, out: Handle) -> None: ...
    def to_numpy(self, a: Handle, shape: _Ints, strides: _Ints, offset: int) -> np.ndarray: ...
    def fill(self, out: Handle, value: float) -> None: ...
    def astype(self, a: Handle, out: Handle) -> None: ...

    # layout
    def compact(
        self, a: Handle, out: Handle, shape: _Ints, strides: _Ints, offset: int
    ) -> None: ...
    def ewise_setitem(
        self, a: Handle, out: Handle, shape: _Ints, strides: _Ints, offset: int
    ) -> None: ...
    def scalar_setitem(
        self, size: int, value: float, out: Handle, shape: _Ints, strides: _Ints, offset: int
    ) -> None: ...

    # reductions and matmul
    def reduce_sum(self, a: Handle, out: Handle, reduce_size: int) -> None: ...
    def reduce_max(self, a: Handle, out: Handle, reduce_size: int) -> None: ...
    def matmul(self, a: Handle, b: Handle, out: Handle, m: int, n: int, p: int) -> None: ...

    # element-wise and scalar
    def ewise_add(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_add(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_sub(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_sub(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_mul(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_mul(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_div(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_div(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_power(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_power(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_maximum(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_maximum(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_eq(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_eq(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_ne(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_ne(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_lt(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_lt(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_le(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_le(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_gt(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_gt(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_ge(self, a: Handle, b: Handle, out: Handle) -> None: ...
    def scalar_ge(self, a: Handle, value: float, out: Handle) -> None: ...
    def ewise_neg(self, a: Handle, out: Handle) -> None: ...
    def ewise_abs(self, a: Handle, out: Handle) -> None: ...
    def ewise_log(self, a: Handle, out: Handle) -> None: ...
    def ewise_exp(self, a: Handle, out: Handle) -> None: ...
    def ewise_tanh(self, a: Handle, out: Handle) -> None: ...
    def ewise_sqrt(self, a: Handle, out: Handle) -> None: ...
    def ewise_sin(self, a: Handle, out: Handle) -> None: ...
    def ewise_cos(self, a: Handle, out: Handle) -> None: ...


__all__ = [
    "CONTRACT_VERSION",
    "FAMILIES",
    "KERNELS",
    "OPTIONAL_KERNELS",
    "REQUIRED_KERNELS",
    "ErrorCase",
    "Handle",
    "HandlePtr",
    "KernelSpec",
    "KernelTable",
    "kernels_in_family",
]
