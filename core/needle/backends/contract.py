"""The backend contract: the one list of kernels every needle backend provides.

This module is the single source of truth for what a backend must implement.
Registration validates against :data:`REQUIRED_KERNELS`, the conformance suite tests
each entry one by one, and ``docs/writing-a-backend.md`` documents it.

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
  ``ValueError``/``TypeError``/``IndexError`` with a message naming the kernel.

Bump :data:`CONTRACT_VERSION` (major) whenever a required kernel is added, removed or
changes meaning; ``tests/test_contract_snapshot.py`` guards against silent changes.
"""

from __future__ import annotations

CONTRACT_VERSION: tuple[int, int] = (1, 0)
"""(major, minor). A plugin whose major version differs is refused."""

_EWISE_BINARY = {
    "add": "a + b",
    "sub": "a - b",
    "mul": "a * b",
    "div": "a / b",
    "power": "a ** b",
    "maximum": "max(a, b) (NaN if either is NaN)",
    "eq": "1.0 if a == b else 0.0",
    "ne": "1.0 if a != b else 0.0",
    "lt": "1.0 if a < b else 0.0",
    "le": "1.0 if a <= b else 0.0",
    "gt": "1.0 if a > b else 0.0",
    "ge": "1.0 if a >= b else 0.0",
}

_EWISE_UNARY = {
    "neg": "-a",
    "abs": "|a|",
    "log": "natural logarithm",
    "exp": "e ** a",
    "tanh": "hyperbolic tangent",
    "sqrt": "square root",
    "sin": "sine",
    "cos": "cosine",
}

REQUIRED_KERNELS: dict[str, str] = {
    # --- buffers -------------------------------------------------------------------
    "alloc": "alloc(size: int, dtype: str) -> handle. A new uninitialised buffer of "
    "`size` elements. size may be 0. Unsupported dtype -> TypeError.",
    "from_numpy": "from_numpy(src: numpy.ndarray, out: handle). Copy a 1-D C-contiguous "
    "NumPy array of out's dtype and size into out.",
    "to_numpy": "to_numpy(a: handle, shape, strides, offset) -> numpy.ndarray. A new NumPy "
    "array (owning its memory) holding the strided view of a.",
    "fill": "fill(out: handle, value: float). Set every element of out to value.",
    "astype": "astype(a: handle, out: handle). Convert the first out.size elements of a "
    "to out's dtype (a and out may differ in dtype; size must match).",
    # --- layout --------------------------------------------------------------------
    "compact": "compact(a: handle, out: handle, shape, strides, offset). Write the "
    "strided view (shape, strides, offset) of a into out in row-major order.",
    "ewise_setitem": "ewise_setitem(a: handle, out: handle, shape, strides, offset). "
    "Write the compact a into the strided view (shape, strides, offset) of out.",
    "scalar_setitem": "scalar_setitem(size: int, value: float, out: handle, shape, strides, "
    "offset). Set every element of the strided view of out to value; size is the "
    "view's element count.",
    # --- reductions and matmul -------------------------------------------------------
    "reduce_sum": "reduce_sum(a: handle, out: handle, reduce_size: int). out[i] = "
    "sum(a[i*reduce_size:(i+1)*reduce_size]) for i < out.size.",
    "reduce_max": "reduce_max(a: handle, out: handle, reduce_size: int). Like reduce_sum "
    "with max. reduce_size >= 1.",
    "matmul": "matmul(a: handle, b: handle, out: handle, m: int, n: int, p: int). "
    "Compact (m, n) @ (n, p) -> compact (m, p). n may be 0 (out is zeros).",
}
for _name, _doc in _EWISE_BINARY.items():
    REQUIRED_KERNELS[f"ewise_{_name}"] = f"ewise_{_name}(a, b, out). out = {_doc}, element-wise."
    REQUIRED_KERNELS[f"scalar_{_name}"] = (
        f"scalar_{_name}(a, value: float, out). out = {_doc.replace('b', 'value')}, element-wise."
    )
for _name, _doc in _EWISE_UNARY.items():
    REQUIRED_KERNELS[f"ewise_{_name}"] = f"ewise_{_name}(a, out). out = {_doc}, element-wise."

OPTIONAL_KERNELS: dict[str, str] = {
    "batched_matmul": "batched_matmul(a, b, out, batch: int, m: int, n: int, p: int). "
    "Compact (batch, m, n) @ (batch, n, p) -> compact (batch, m, p).",
    "logsumexp_last": "logsumexp_last(a, out, reduce_size: int). Numerically stable "
    "log(sum(exp(row))) over compact rows of reduce_size elements (max-shifted; rows "
    "whose max is -inf give -inf).",
    "softmax_last": "softmax_last(a, out, reduce_size: int). Stable softmax over compact "
    "rows of reduce_size elements; out has a's size.",
    "conv2d_nhwc": "conv2d_nhwc(x, w, out, n, h, w_, c_in, k, c_out, stride: int). "
    "Valid (unpadded) convolution of compact NHWC x with compact KKIO weights w into "
    "compact (n, (h-k)//stride+1, (w_-k)//stride+1, c_out).",
    "ewise_where": "ewise_where(cond, a, b, out). out = a where cond != 0 else b.",
    "reduce_argmax": "reduce_argmax(a, out, reduce_size: int). Index (as a float) of the "
    "first maximum of each compact row.",
    "synchronize": "synchronize(). Wait for queued device work (for timing).",
}

__all__ = ["CONTRACT_VERSION", "OPTIONAL_KERNELS", "REQUIRED_KERNELS"]
