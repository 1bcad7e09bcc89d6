"""Area ``kernels``: every required kernel called directly on flat buffers, vs NumPy.

Each test exercises one kernel and uses only ``alloc``/``from_numpy``/``to_numpy``
besides it, so a failure points at the kernel in its name. Optional kernels are tested
when the backend declares them.
"""

from __future__ import annotations

import contextlib
import gc
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from needle.backends import KERNELS, REQUIRED_KERNELS, ErrorCase, KernelSpec, kernels_in_family

from . import _dlpack_utils, _state
from ._kernel_utils import (
    download,
    error_args,
    error_repro,
    expected,
    gen,
    header,
    strided_views,
    upload,
    upload_code,
)
from .assertions import assert_close, assert_raises

pytestmark = pytest.mark.kernels
DTYPES = _state.dtypes()
SETTINGS = _state.hypothesis_settings()

# Kernels with a dedicated test below; every other required kernel is tested through its
# family, driven by its ``KernelSpec`` record (inputs, scalars, NumPy reference).
DEDICATED = {
    "alloc",
    "from_numpy",
    "to_numpy",
    "fill",
    "astype",
    "compact",
    "ewise_setitem",
    "scalar_setitem",
    "matmul",
}
BY_FAMILY = ("ewise_binary", "scalar_binary", "ewise_unary", "reduce")
EWISE = kernels_in_family("ewise_binary")
SCALAR = kernels_in_family("scalar_binary")
UNARY = kernels_in_family("ewise_unary")
REDUCE = kernels_in_family("reduce")


def test_every_required_kernel_is_tested() -> None:
    """The suite itself keeps up with the contract: each required kernel has a test here."""
    tested = DEDICATED | {s.name for f in BY_FAMILY for s in kernels_in_family(f)}
    assert set(REQUIRED_KERNELS) == tested, set(REQUIRED_KERNELS) ^ tested


def _tol(spec: KernelSpec, dtype: str) -> dict[str, Any]:
    return {"rtol": 0.0, "atol": 0.0} if spec.exact else {"dtype": dtype}


# --- buffers ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [0, 1, 17])
def test_alloc(needle_kernels: Any, needle_backend_name: str, dtype: str, size: int) -> None:
    h = needle_kernels.alloc(size, dtype)
    what = f"kernel alloc({size}, {dtype!r})"
    repro = "\n".join(
        [*header(needle_backend_name), f"h = k.alloc({size}, {dtype!r})", "print(h.size, h.dtype)"]
    )
    if (h.size, h.dtype) != (size, dtype):
        pytest.fail(
            f"{what}: handle has size {h.size!r} and dtype {h.dtype!r}\n{repro}", pytrace=False
        )


@pytest.mark.parametrize("dtype", DTYPES)
@given(view=strided_views(), seed=st.integers(0, 9999))
@SETTINGS
def test_from_numpy_to_numpy(
    needle_kernels: Any, needle_backend_name: str, dtype: str, view: dict[str, Any], seed: int
) -> None:
    """Round trip; ``to_numpy`` of a strided view equals NumPy's view of the same data."""
    k = needle_kernels
    src, lines = gen("src", "normal", (view["size"],), seed, dtype)
    h = upload(k, src, dtype)
    shape, strides, offset = view["shape"], view["strides"], view["offset"]
    got = k.to_numpy(h, shape, strides, offset)
    repro = "\n".join(
        [
            *header(needle_backend_name),
            *lines,
            *upload_code("a", "src", dtype),
            f"print(k.to_numpy(a, {shape}, {strides}, {offset}))",
        ]
    )
    assert_close(
        download(k, h),
        src,
        rtol=0,
        atol=0,
        repro=repro,
        what=f"kernel from_numpy/to_numpy round trip: {view['size']} elements {dtype}",
    )
    assert_close(
        got,
        KERNELS["to_numpy"].reference(src, shape, strides, offset),
        rtol=0,
        atol=0,
        repro=repro,
        what=f"kernel to_numpy: view shape {shape} strides {strides} offset {offset} "
        f"of a {dtype} buffer of {view['size']}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", [0.0, -2.5, float("inf")])
def test_fill(needle_kernels: Any, needle_backend_name: str, dtype: str, value: float) -> None:
    k = needle_kernels
    h = k.alloc(13, dtype)
    k.fill(h, value)
    repro = "\n".join(
        [
            *header(needle_backend_name),
            f"h = k.alloc(13, {dtype!r})",
            f"k.fill(h, {value!r})",
            "print(k.to_numpy(h, (13,), (1,), 0))",
        ]
    )
    assert_close(
        download(k, h),
        np.full(13, value),
        rtol=0,
        atol=0,
        repro=repro,
        what=f"kernel fill: 13 elements {dtype} with {value!r}",
    )


@pytest.mark.parametrize("src_dtype", DTYPES)
@pytest.mark.parametrize("dst_dtype", DTYPES)
def test_astype(
    needle_kernels: Any, needle_backend_name: str, src_dtype: str, dst_dtype: str
) -> None:
    k = needle_kernels
    src, lines = gen("src", "normal", (11,), 5, src_dtype)
    a = upload(k, src, src_dtype)
    out = k.alloc(11, dst_dtype)
    k.astype(a, out)
    repro = "\n".join(
        [
            *header(needle_backend_name),
            *lines,
            *upload_code("a", "src", src_dtype),
            f"out = k.alloc(11, {dst_dtype!r})",
            "k.astype(a, out)",
            "print(k.to_numpy(out, (11,), (1,), 0))",
        ]
    )
    if out.dtype != dst_dtype:
        pytest.fail(
            f"kernel astype: out has dtype {out.dtype!r}, expected {dst_dtype!r}", pytrace=False
        )
    assert_close(
        download(k, out),
        src.astype(dst_dtype),
        rtol=0,
        atol=0,
        repro=repro,
        what=f"kernel astype: 11 elements {src_dtype} -> {dst_dtype}",
    )


# --- layout ----------------------------------------------------------------------------
_OFFSET_EXAMPLE = {"shape": (3, 4), "strides": (1, 3), "offset": 5, "size": 17}


def _assert_view_kernel(
    k: Any,
    out: Any,
    expected: np.ndarray,
    *,
    kernel: str,
    backend: str,
    view: dict[str, Any],
    dtype: str,
    setup: list[str],
    call: str,
) -> None:
    """Exact comparison for the strided-view kernels, with a repro that ends in ``call``."""
    shape, strides, offset = view["shape"], view["strides"], view["offset"]
    repro = "\n".join(
        [*header(backend), *setup, call, f"print(k.to_numpy(out, ({out.size},), (1,), 0))"]
    )
    assert_close(
        download(k, out),
        expected,
        rtol=0,
        atol=0,
        repro=repro,
        what=f"kernel {kernel}: view shape {shape} strides {strides} offset {offset} "
        f"of a {dtype} buffer of {view['size']}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@given(view=strided_views(), seed=st.integers(0, 9999))
@example(view=_OFFSET_EXAMPLE, seed=1)
@example(view={"shape": (2, 3), "strides": (0, 2), "offset": 3, "size": 8}, seed=2)
@SETTINGS
def test_compact(
    needle_kernels: Any, needle_backend_name: str, dtype: str, view: dict[str, Any], seed: int
) -> None:
    k = needle_kernels
    shape, strides, offset = view["shape"], view["strides"], view["offset"]
    src, lines = gen("src", "normal", (view["size"],), seed, dtype)
    a = upload(k, src, dtype)
    n = int(np.prod(shape, dtype=np.int64))
    out = k.alloc(n, dtype)
    k.compact(a, out, shape, strides, offset)
    _assert_view_kernel(
        k,
        out,
        KERNELS["compact"].reference(src, shape, strides, offset).reshape(-1),
        kernel="compact",
        backend=needle_backend_name,
        view=view,
        dtype=dtype,
        setup=[*lines, *upload_code("a", "src", dtype), f"out = k.alloc({n}, {dtype!r})"],
        call=f"k.compact(a, out, {shape}, {strides}, {offset})",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@given(view=strided_views(injective=True), seed=st.integers(0, 9999))
@example(view=_OFFSET_EXAMPLE, seed=3)
@SETTINGS
def test_ewise_setitem(
    needle_kernels: Any, needle_backend_name: str, dtype: str, view: dict[str, Any], seed: int
) -> None:
    k = needle_kernels
    shape, strides, offset = view["shape"], view["strides"], view["offset"]
    n = int(np.prod(shape, dtype=np.int64))
    dst, lines = gen("dst", "normal", (view["size"],), seed, dtype)
    src, lines2 = gen("src", "normal", (n,), seed + 1, dtype)
    out = upload(k, dst, dtype)
    a = upload(k, src, dtype)
    k.ewise_setitem(a, out, shape, strides, offset)
    _assert_view_kernel(
        k,
        out,
        KERNELS["ewise_setitem"].reference(dst, src, shape, strides, offset),
        kernel="ewise_setitem",
        backend=needle_backend_name,
        view=view,
        dtype=dtype,
        setup=[
            *lines,
            *lines2,
            *upload_code("out", "dst", dtype),
            *upload_code("a", "src", dtype),
        ],
        call=f"k.ewise_setitem(a, out, {shape}, {strides}, {offset})",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@given(view=strided_views(), seed=st.integers(0, 9999), value=st.sampled_from([0.0, -1.5, 7.0]))
@example(view=_OFFSET_EXAMPLE, seed=4, value=-1.5)
@SETTINGS
def test_scalar_setitem(
    needle_kernels: Any,
    needle_backend_name: str,
    dtype: str,
    view: dict[str, Any],
    seed: int,
    value: float,
) -> None:
    k = needle_kernels
    shape, strides, offset = view["shape"], view["strides"], view["offset"]
    n = int(np.prod(shape, dtype=np.int64))
    dst, lines = gen("dst", "normal", (view["size"],), seed, dtype)
    out = upload(k, dst, dtype)
    k.scalar_setitem(n, value, out, shape, strides, offset)
    _assert_view_kernel(
        k,
        out,
        KERNELS["scalar_setitem"].reference(dst, value, shape, strides, offset),
        kernel="scalar_setitem",
        backend=needle_backend_name,
        view=view,
        dtype=dtype,
        setup=[*lines, *upload_code("out", "dst", dtype)],
        call=f"k.scalar_setitem({n}, {value!r}, out, {shape}, {strides}, {offset})",
    )


# --- element-wise ----------------------------------------------------------------------
def _ids(specs: tuple[KernelSpec, ...]) -> list[str]:
    return [spec.name for spec in specs]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", EWISE, ids=_ids(EWISE))
@given(size=st.integers(0, 40), seed=st.integers(0, 9999))
@example(size=7, seed=0)
@SETTINGS
def test_ewise_binary(
    needle_kernels: Any,
    needle_backend_name: str,
    spec: KernelSpec,
    dtype: str,
    size: int,
    seed: int,
) -> None:
    ka, kb = spec.inputs
    k = needle_kernels
    a_np, la = gen("a_np", ka, (size,), seed, dtype)
    b_np, lb = gen("b_np", kb, (size,), seed + 1, dtype)
    a, b, out = upload(k, a_np, dtype), upload(k, b_np, dtype), k.alloc(size, dtype)
    getattr(k, spec.name)(a, b, out)
    repro = "\n".join(
        [
            *header(needle_backend_name),
            *la,
            *lb,
            *upload_code("a", "a_np", dtype),
            *upload_code("b", "b_np", dtype),
            f"out = k.alloc({size}, {dtype!r})",
            f"k.{spec.name}(a, b, out)",
            f"print(k.to_numpy(out, ({size},), (1,), 0))",
        ]
    )
    assert_close(
        download(k, out),
        expected(spec, a_np, b_np),
        repro=repro,
        **_tol(spec, dtype),
        what=f"kernel {spec.name}: {size} elements {dtype}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", SCALAR, ids=_ids(SCALAR))
@given(size=st.integers(0, 40), seed=st.integers(0, 9999), pick=st.integers(0, 3))
@example(size=7, seed=0, pick=0)
@SETTINGS
def test_scalar_binary(
    needle_kernels: Any,
    needle_backend_name: str,
    spec: KernelSpec,
    dtype: str,
    size: int,
    seed: int,
    pick: int,
) -> None:
    value = spec.scalars[pick % len(spec.scalars)]
    k = needle_kernels
    a_np, la = gen("a_np", spec.inputs[0], (size,), seed, dtype)
    a, out = upload(k, a_np, dtype), k.alloc(size, dtype)
    getattr(k, spec.name)(a, value, out)
    repro = "\n".join(
        [
            *header(needle_backend_name),
            *la,
            *upload_code("a", "a_np", dtype),
            f"out = k.alloc({size}, {dtype!r})",
            f"k.{spec.name}(a, {value!r}, out)",
            f"print(k.to_numpy(out, ({size},), (1,), 0))",
        ]
    )
    assert_close(
        download(k, out),
        expected(spec, a_np, float(np.asarray(value, dtype))),
        repro=repro,
        **_tol(spec, dtype),
        what=f"kernel {spec.name}: {size} elements {dtype}, value {value!r}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", UNARY, ids=_ids(UNARY))
@given(size=st.integers(0, 40), seed=st.integers(0, 9999))
@example(size=7, seed=0)
@SETTINGS
def test_ewise_unary(
    needle_kernels: Any,
    needle_backend_name: str,
    spec: KernelSpec,
    dtype: str,
    size: int,
    seed: int,
) -> None:
    k = needle_kernels
    a_np, la = gen("a_np", spec.inputs[0], (size,), seed, dtype)
    a, out = upload(k, a_np, dtype), k.alloc(size, dtype)
    getattr(k, spec.name)(a, out)
    repro = "\n".join(
        [
            *header(needle_backend_name),
            *la,
            *upload_code("a", "a_np", dtype),
            f"out = k.alloc({size}, {dtype!r})",
            f"k.{spec.name}(a, out)",
            f"print(k.to_numpy(out, ({size},), (1,), 0))",
        ]
    )
    assert_close(
        download(k, out),
        expected(spec, a_np),
        repro=repro,
        **_tol(spec, dtype),
        what=f"kernel {spec.name}: {size} elements {dtype}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_semantics(needle_kernels: Any, needle_backend_name: str, dtype: str) -> None:
    """maximum propagates NaN; every comparison with NaN is 0 except ne, which is 1."""
    k = needle_kernels
    a_np = np.array([np.nan, 1.0, np.nan], dtype=dtype)
    b_np = np.array([1.0, np.nan, np.nan], dtype=dtype)
    a, b = upload(k, a_np, dtype), upload(k, b_np, dtype)
    for spec in (KERNELS["ewise_maximum"], *(s for s in EWISE if s.exact)):
        out = k.alloc(3, dtype)
        getattr(k, spec.name)(a, b, out)
        repro = "\n".join(
            [
                *header(needle_backend_name),
                f"a_np = np.array([np.nan, 1.0, np.nan], dtype={dtype!r})",
                f"b_np = np.array([1.0, np.nan, np.nan], dtype={dtype!r})",
                *upload_code("a", "a_np", dtype),
                *upload_code("b", "b_np", dtype),
                f"out = k.alloc(3, {dtype!r})",
                f"k.{spec.name}(a, b, out)",
                "print(k.to_numpy(out, (3,), (1,), 0))",
            ]
        )
        assert_close(
            download(k, out),
            expected(spec, a_np, b_np),
            rtol=0,
            atol=0,
            repro=repro,
            what=f"kernel {spec.name}: NaN inputs {dtype}",
        )


# --- reductions and matmul -------------------------------------------------------------
def _reduce_tol(spec: KernelSpec, dtype: str) -> dict[str, Any]:
    if not spec.exact and dtype == "float32":
        return {"rtol": 1e-5, "atol": 1e-5}  # float32 sums of up to 9 terms
    return _tol(spec, dtype)


def _reduce_check(
    k: Any, backend: str, spec: KernelSpec, dtype: str, rows: int, size: int, seed: int
) -> None:
    name = spec.name
    a_np, la = gen("a_np", "normal", (rows * size,), seed, dtype)
    a, out = upload(k, a_np, dtype), k.alloc(rows, dtype)
    getattr(k, name)(a, out, size)
    repro = "\n".join(
        [
            *header(backend),
            *la,
            *upload_code("a", "a_np", dtype),
            f"out = k.alloc({rows}, {dtype!r})",
            f"k.{name}(a, out, {size})",
            f"print(k.to_numpy(out, ({rows},), (1,), 0))",
        ]
    )
    assert_close(
        download(k, out),
        expected(spec, a_np.reshape(rows, size)),
        repro=repro,
        **_reduce_tol(spec, dtype),
        what=f"kernel {name}: {rows} rows of reduce_size {size}, {dtype}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", REDUCE, ids=_ids(REDUCE))
@given(rows=st.integers(0, 6), size=st.integers(1, 9), seed=st.integers(0, 9999))
@SETTINGS
def test_reduce(
    needle_kernels: Any,
    needle_backend_name: str,
    spec: KernelSpec,
    dtype: str,
    rows: int,
    size: int,
    seed: int,
) -> None:
    _reduce_check(needle_kernels, needle_backend_name, spec, dtype, rows, size, seed)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", REDUCE, ids=_ids(REDUCE))
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_reduce_extreme_position(
    needle_kernels: Any, needle_backend_name: str, spec: KernelSpec, dtype: str, where: str
) -> None:
    """Rows whose largest element sits first, in the middle or last (edge handling)."""
    name = spec.name
    rows, size = 3, 5
    k = needle_kernels
    base = -np.arange(rows * size, dtype=np.float64).reshape(rows, size) / 8
    pos = {"first": 0, "middle": size // 2, "last": size - 1}[where]
    base[:, pos] = 10.0 + np.arange(rows)
    a = upload(k, base.reshape(-1), dtype)
    out = k.alloc(rows, dtype)
    getattr(k, name)(a, out, size)
    repro = "\n".join(
        [
            *header(needle_backend_name),
            f"x = -np.arange({rows * size}.0).reshape({rows}, {size}) / 8",
            f"x[:, {pos}] = 10.0 + np.arange({rows})",
            *upload_code("a", "x", dtype),
            f"out = k.alloc({rows}, {dtype!r})",
            f"k.{name}(a, out, {size})",
            f"print(k.to_numpy(out, ({rows},), (1,), 0))",
        ]
    )
    assert_close(
        download(k, out),
        expected(spec, base.astype(dtype)),
        repro=repro,
        dtype=dtype,
        what=f"kernel {name}: {rows} rows of reduce_size {size}, {dtype}, "
        f"largest element {where} in each row",
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_reduce_sum_empty_rows(needle_kernels: Any, needle_backend_name: str, dtype: str) -> None:
    """reduce_size 0: every output element is 0."""
    k = needle_kernels
    a, out = k.alloc(0, dtype), k.alloc(3, dtype)
    k.fill(out, 5.0)
    k.reduce_sum(a, out, 0)
    repro = "\n".join(
        [
            *header(needle_backend_name),
            f"a = k.alloc(0, {dtype!r})",
            f"out = k.alloc(3, {dtype!r})",
            "k.reduce_sum(a, out, 0)",
            "print(k.to_numpy(out, (3,), (1,), 0))",
        ]
    )
    assert_close(
        download(k, out),
        expected(KERNELS["reduce_sum"], np.zeros((3, 0))),
        rtol=0,
        atol=0,
        repro=repro,
        what=f"kernel reduce_sum: 3 rows of reduce_size 0, {dtype}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@given(m=st.integers(0, 6), n=st.integers(0, 6), p=st.integers(0, 6), seed=st.integers(0, 9999))
@example(m=2, n=3, p=4, seed=0)
@example(m=3, n=3, p=3, seed=1)
@SETTINGS
def test_matmul(
    needle_kernels: Any, needle_backend_name: str, dtype: str, m: int, n: int, p: int, seed: int
) -> None:
    k = needle_kernels
    a_np, la = gen("a_np", "normal", (m, n), seed, dtype)
    b_np, lb = gen("b_np", "normal", (n, p), seed + 1, dtype)
    a, b, out = upload(k, a_np, dtype), upload(k, b_np, dtype), k.alloc(m * p, dtype)
    k.fill(out, 3.0)  # n == 0 must still write zeros
    k.matmul(a, b, out, m, n, p)
    repro = "\n".join(
        [
            *header(needle_backend_name),
            *la,
            *lb,
            *upload_code("a", "a_np", dtype),
            *upload_code("b", "b_np", dtype),
            f"out = k.alloc({m * p}, {dtype!r})",
            f"k.matmul(a, b, out, {m}, {n}, {p})",
            f"print(k.to_numpy(out, ({m}, {p}), ({p}, 1), 0))",
        ]
    )
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == "float32" else {"dtype": dtype}
    assert_close(
        download(k, out).reshape(m, p),
        expected(KERNELS["matmul"], a_np, b_np),
        repro=repro,
        **tol,
        what=f"kernel matmul: ({m}, {n}) @ ({n}, {p}), {dtype}",
    )


# --- errors ----------------------------------------------------------------------------
# every record's bad inputs: the required kernels', and those of the optional kernels the
# backend declares
_CASES = [(spec, case) for spec in KERNELS.values() for case in spec.errors]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "spec, case", _CASES, ids=[f"{spec.name}_{case.tag}" for spec, case in _CASES]
)
def test_kernel_error(
    needle_device: Any,
    needle_backend_name: str,
    dtype: str,
    spec: KernelSpec,
    case: ErrorCase,
) -> None:
    """Bad sizes, views and dtypes raise a fitting error naming the kernel; no crash."""
    if not spec.required and not needle_device.has_kernel(spec.name):
        pytest.skip(f"backend {needle_backend_name!r} does not declare optional kernel {spec.name}")
    k = needle_device.kernels
    args = error_args(k, spec, case, dtype, DTYPES)
    assert_raises(
        lambda: getattr(k, spec.name)(*args),
        case.exceptions,
        rf"\b{spec.name}\b",
        what=f"kernel {spec.name}: error input {spec.name}_{case.tag}, {case.description} "
        f"({dtype})",
        repro=error_repro(k, needle_backend_name, spec.name, args),
    )


# --- optional kernels ------------------------------------------------------------------
OPTIONAL = kernels_in_family("optional")


def _reference_parts(spec: KernelSpec, *args: Any) -> tuple[np.ndarray, ...]:
    """A multi-output reference (a tuple of arrays) on float64 copies of the arrays."""
    wide = [a.astype(np.float64) if isinstance(a, np.ndarray) else a for a in args]
    with np.errstate(all="ignore"):
        return tuple(np.asarray(p, dtype=np.float64) for p in spec.reference(*wide))


def _optional_check(k: Any, name: str, dtype: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Run optional kernel ``name`` on fixed data; return (got, expected, description).

    The expected values come from the record's NumPy reference on the inputs as rounded
    to ``dtype``.
    """
    spec = KERNELS[name]
    rng = np.random.default_rng(11)

    def rounded(x: np.ndarray) -> np.ndarray:
        return x.astype(dtype)

    if name == "batched_matmul":
        a, b = rounded(rng.standard_normal((3, 2, 4))), rounded(rng.standard_normal((3, 4, 5)))
        out = k.alloc(30, dtype)
        k.batched_matmul(upload(k, a, dtype), upload(k, b, dtype), out, 3, 2, 4, 5)
        return download(k, out), expected(spec, a, b).reshape(-1), "(3, 2, 4) @ (3, 4, 5)"
    if name in ("logsumexp_last", "softmax_last", "reduce_argmax"):
        x = rng.standard_normal((4, 6))
        x[1] += 1000.0  # stability
        if name == "reduce_argmax":
            x = np.round(x * 0.6)  # ties: the first maximum wins
        x = rounded(x)
        out = k.alloc(24 if name == "softmax_last" else 4, dtype)
        getattr(k, name)(upload(k, x, dtype), out, 6)
        return (
            download(k, out),
            expected(spec, x).reshape(-1),
            "4 rows of 6 (row 1 shifted by +1000)",
        )
    if name == "conv2d_nhwc":
        x, w = (
            rounded(rng.standard_normal((2, 6, 5, 3))),
            rounded(rng.standard_normal((3, 3, 3, 4))),
        )
        out = k.alloc(2 * 2 * 2 * 4, dtype)
        k.conv2d_nhwc(upload(k, x, dtype), upload(k, w, dtype), out, 2, 6, 5, 3, 3, 4, 2)
        return (
            download(k, out),
            expected(spec, x, w, 2).reshape(-1),
            "x (2, 6, 5, 3), w (3, 3, 3, 4), stride 2",
        )
    if name in ("conv2d_nhwc_pad", "conv2d_nhwc_backward_input", "conv2d_nhwc_backward_weight"):
        # (n, h, w_, c_in, k, c_out, stride, padding): odd sizes, stride 2 with padding 1,
        # then a 1x1 kernel with padding 2 (the border outputs see only zeros)
        outs, wants = [], []
        for dims in ((2, 6, 5, 3, 3, 4, 2, 1), (1, 3, 4, 2, 1, 3, 1, 2)):
            n, h, w_, c_in, kk, c_out, stride, pad = dims
            ho, wo = (h + 2 * pad - kk) // stride + 1, (w_ + 2 * pad - kk) // stride + 1
            x = rounded(rng.standard_normal((n, h, w_, c_in)))
            w = rounded(rng.standard_normal((kk, kk, c_in, c_out)))
            g = rounded(rng.standard_normal((n, ho, wo, c_out)))
            if name == "conv2d_nhwc_pad":
                out = k.alloc(g.size, dtype)
                k.conv2d_nhwc_pad(upload(k, x, dtype), upload(k, w, dtype), out, *dims)
                want = expected(spec, x, w, stride, pad)
            elif name == "conv2d_nhwc_backward_input":
                out = k.alloc(x.size, dtype)
                k.conv2d_nhwc_backward_input(upload(k, g, dtype), upload(k, w, dtype), out, *dims)
                want = expected(spec, g, w, h, w_, stride, pad)
            else:
                out = k.alloc(w.size, dtype)
                k.conv2d_nhwc_backward_weight(upload(k, x, dtype), upload(k, g, dtype), out, *dims)
                want = expected(spec, x, g, kk, stride, pad)
            outs.append(download(k, out))
            wants.append(np.ravel(want))
        return (
            np.concatenate(outs),
            np.concatenate(wants),
            "x (2, 6, 5, 3), w (3, 3, 3, 4), stride 2, padding 1; then x (1, 3, 4, 2), "
            "w (1, 1, 2, 3), stride 1, padding 2",
        )
    if name == "ewise_where":
        c = (rng.random(9) < 0.5).astype(float)
        a, b = rounded(rng.standard_normal(9)), rounded(rng.standard_normal(9))
        out = k.alloc(9, dtype)
        k.ewise_where(upload(k, c, dtype), upload(k, a, dtype), upload(k, b, dtype), out)
        return download(k, out), expected(spec, c, a, b), "9 elements"
    if name == "synchronize":
        result = k.synchronize()
        return np.asarray(result is None), np.asarray(True), "returns None"
    if name in ("matmul_t", "batched_matmul_t"):
        batched = name == "batched_matmul_t"
        lead = (2,) if batched else ()
        m, n, p = 3, 5, 4
        a, b = (
            rounded(rng.standard_normal((*lead, n, m))),
            rounded(rng.standard_normal((*lead, n, p))),
        )
        args = (2, m, n, p, 1, 0) if batched else (m, n, p, 1, 0)  # a stored transposed
        out = k.alloc((2 if batched else 1) * m * p, dtype)
        getattr(k, name)(upload(k, a, dtype), upload(k, b, dtype), out, *args)
        want = expected(spec, a, b, 1, 0).reshape(-1)
        if not batched:  # also trans_b: b stored (p, n)
            bt = np.ascontiguousarray(b.T)
            out2 = k.alloc(m * p, dtype)
            k.matmul_t(upload(k, a, dtype), upload(k, bt, dtype), out2, m, n, p, 1, 1)
            return (
                np.concatenate([download(k, out), download(k, out2)]),
                np.concatenate([want, expected(spec, a, bt, 1, 1).reshape(-1)]),
                "a stored (5, 3) read transposed, then b stored (4, 5) transposed too",
            )
        return download(k, out), want, "2 products, a stored (2, 5, 3) read transposed"
    if name in ("reduce_sum_mid", "reduce_max_mid"):
        x = rounded(rng.standard_normal((3, 4, 5)))
        out = k.alloc(15, dtype)
        getattr(k, name)(upload(k, x, dtype), out, 3, 4, 5)
        return download(k, out), expected(spec, x).reshape(-1), "axis 1 of (3, 4, 5)"
    if name == "program_compile":
        x = rounded(rng.standard_normal(6))
        a, b, out = upload(k, x, dtype), k.alloc(6, dtype), k.alloc(6, dtype)
        prog = k.program_compile([("scalar_mul", (a, 2.0, b)), ("ewise_add", (a, b, out))])
        k.program_run(prog)
        return download(k, out), x + x * np.asarray(2.0, dtype), "a*2 then a + that"
    if name == "program_set_scalars":  # the floats change between runs; a bad slot is refused
        x = rounded(rng.standard_normal(6))
        a, out = upload(k, x, dtype), k.alloc(6, dtype)
        prog = k.program_compile([("scalar_mul", (a, 2.0, out)), ("scalar_add", (out, 1.0, out))])
        k.program_run(prog)
        k.program_set_scalars(prog, [(0, 1), (1, 1)], [-3.0, 0.5])
        k.program_run(prog)
        refused = False
        try:
            k.program_set_scalars(prog, [(0, 0)], [1.0])  # argument 0 is a buffer
        except ValueError:
            refused = True
        got = np.concatenate([download(k, out), [float(refused)]])
        want = np.concatenate([x * np.asarray(-3.0, dtype) + np.asarray(0.5, dtype), [1.0]])
        return got, want, "a*2+1, then a*-3+0.5 after setting both floats; a buffer slot refused"
    if name == "program_run":  # bad instructions are refused, naming index and kernel
        a = k.alloc(4, dtype)
        try:
            k.program_compile([("fill", (a, 1.0)), ("matmul", (a, a, a, 5, 5, 5))])
        except ValueError as exc:
            ok = "1" in str(exc) and "matmul" in str(exc)
            return np.asarray(ok), np.asarray(True), "ValueError naming instruction 1 (matmul)"
        return np.asarray(False), np.asarray(True), "a bad instruction must raise ValueError"
    if name in ("batchnorm_forward", "layernorm_forward"):  # (out, stats) in one array
        x = rounded(rng.standard_normal((7, 3)) * 2.0 + 1.0)
        w, b = rounded(rng.standard_normal(3)), rounded(rng.standard_normal(3))
        n_stats = 6 if name == "batchnorm_forward" else 14
        out, stats = k.alloc(21, dtype), k.alloc(n_stats, dtype)
        getattr(k, name)(
            upload(k, x, dtype), upload(k, w, dtype), upload(k, b, dtype), out, stats, 7, 3, 1e-5
        )
        want = _reference_parts(spec, x, w, b, 1e-5)
        return (
            np.concatenate([download(k, out), download(k, stats)]),
            np.concatenate([np.ravel(a) for a in want]),
            "x (7, 3), eps 1e-5; out then stats",
        )
    if name in ("batchnorm_backward", "layernorm_backward"):
        x, dy = rounded(rng.standard_normal((7, 3))), rounded(rng.standard_normal((7, 3)))
        w = rounded(rng.standard_normal(3))
        axis = 0 if name == "batchnorm_backward" else 1
        stats = rounded(np.stack([x.mean(axis=axis), x.var(axis=axis)]))
        dx, dwb = k.alloc(21, dtype), k.alloc(6, dtype)
        getattr(k, name)(
            upload(k, x, dtype), upload(k, dy, dtype), upload(k, w, dtype),
            upload(k, stats, dtype), dx, dwb, 7, 3, 1e-5,
        )  # fmt: skip
        want = _reference_parts(spec, x, dy, w, stats, 1e-5)
        return (
            np.concatenate([download(k, dx), download(k, dwb)]),
            np.concatenate([np.ravel(a) for a in want]),
            "x, dy (7, 3), eps 1e-5; dx then dwb",
        )
    if name in ("softmax_xent", "softmax_xent_backward"):
        z = rng.standard_normal((4, 6))
        z[1] += 1000.0  # stability
        z, labels, g = (
            rounded(z),
            rounded(np.array([5.0, 0.0, 2.0, 2.0])),
            rounded(np.array([0.25])),
        )
        args = (upload(k, z, dtype), upload(k, labels, dtype))
        if name == "softmax_xent":
            out = k.alloc(4, dtype)
            k.softmax_xent(*args, out, 4, 6)
            want = expected(spec, z, labels)
        else:
            out = k.alloc(24, dtype)
            k.softmax_xent_backward(*args, upload(k, g, dtype), out, 4, 6)
            want = expected(spec, z, labels, g)
        bad = k.alloc(4, dtype)
        try:  # a label outside [0, k) is refused
            getattr(k, name)(upload(k, z, dtype), upload(k, labels + 6.0, dtype),
                             *((upload(k, g, dtype),) if name != "softmax_xent" else ()),
                             k.alloc(24, dtype), 4, 6)  # fmt: skip
            refused = 0.0
        except IndexError:
            refused = 1.0
        k.fill(bad, refused)
        return (
            np.concatenate([download(k, out), download(k, bad)]),
            np.concatenate([np.ravel(want), np.ones(4)]),
            "4 rows of 6 (row 1 shifted by +1000), then labels + 6 refused with IndexError",
        )
    if name in ("take_rows", "scatter_add_rows"):  # repeated ids, then a bad id refused
        table = rounded(rng.standard_normal((5, 3)))
        rows_in = rounded(rng.standard_normal((6, 3)))
        ids = rounded(np.array([4.0, 0.0, 4.0, 2.0, 4.0, 1.0]))
        src, n_src, n_out = (table, 5, 6) if name == "take_rows" else (rows_in, 6, 5)
        out = k.alloc(n_out * 3, dtype)
        getattr(k, name)(upload(k, src, dtype), upload(k, ids, dtype), out, 6, 5, 3)
        want = (
            expected(spec, table, ids) if name == "take_rows" else expected(spec, rows_in, ids, 5)
        )
        flags = []
        for bad_id in (5.0, -1.0, 1.5, float("nan")):
            try:
                bad = upload(k, rounded(np.array([0.0, bad_id])), dtype)
                getattr(k, name)(upload(k, src, dtype), bad, k.alloc(n_out * 3, dtype), 2, 5, 3)
                flags.append(0.0)
            except IndexError:
                flags.append(1.0)
        return (
            np.concatenate([download(k, out), np.array(flags)]),
            np.concatenate([np.ravel(want), np.ones(4)]),
            f"{n_src} rows of 3, ids with repeats; ids 5, -1, 1.5, NaN refused with IndexError",
        )
    if name in ("lstm_cell", "lstm_cell_backward"):
        n, h = 3, 4
        gates = rounded(rng.standard_normal((n, 4 * h)) * 2.0)
        cell, dh, dc = (rounded(rng.standard_normal((n, h))) for _ in range(3))
        if name == "lstm_cell":
            h_out, c_out = k.alloc(n * h, dtype), k.alloc(n * h, dtype)
            k.lstm_cell(upload(k, gates, dtype), upload(k, cell, dtype), h_out, c_out, n, h)
            got = [download(k, h_out), download(k, c_out)]
            want = _reference_parts(spec, gates, cell)
        else:
            d_gates, d_cell = k.alloc(n * 4 * h, dtype), k.alloc(n * h, dtype)
            k.lstm_cell_backward(
                upload(k, gates, dtype), upload(k, cell, dtype), upload(k, dh, dtype),
                upload(k, dc, dtype), d_gates, d_cell, n, h,
            )  # fmt: skip
            got = [download(k, d_gates), download(k, d_cell)]
            want = _reference_parts(spec, gates, cell, dh, dc)
        return (
            np.concatenate(got),
            np.concatenate([np.ravel(a) for a in want]),
            "gates (3, 16), cell (3, 4); outputs in parameter order",
        )
    if name in ("lstm_layer", "lstm_layer_backward"):
        t, n, h = 4, 3, 2
        gx = rounded(rng.standard_normal((t, n, 4 * h)))
        w = rounded(rng.standard_normal((h, 4 * h)) * 0.5)
        h0, c0, dh_n, dc_n = (rounded(rng.standard_normal((n, h))) for _ in range(4))
        dhs = rounded(rng.standard_normal((t, n, h)))
        if name == "lstm_layer":
            outs = [k.alloc(t * n * h, dtype), k.alloc(t * n * h, dtype)]
            outs.append(k.alloc(t * n * 4 * h, dtype))
            k.lstm_layer(*(upload(k, a, dtype) for a in (gx, w, h0, c0)), *outs, t, n, h)
            want = _reference_parts(spec, gx, w, h0, c0)
        else:  # saved tensors from the forward reference, rounded to dtype
            saved = [rounded(a) for a in KERNELS["lstm_layer"].reference(gx, w, h0, c0)]
            outs = [k.alloc(t * n * 4 * h, dtype), k.alloc(4 * h * h, dtype)]
            outs += [k.alloc(n * h, dtype), k.alloc(n * h, dtype)]
            ins = (w, h0, c0, *saved, dhs, dh_n, dc_n)
            k.lstm_layer_backward(*(upload(k, a, dtype) for a in ins), *outs, t, n, h)
            want = _reference_parts(spec, *ins)
        return (
            np.concatenate([download(k, o) for o in outs]),
            np.concatenate([np.ravel(a) for a in want]),
            f"t, n, h = {t}, {n}, {h}; outputs in parameter order",
        )
    if name in ("rnn_layer", "rnn_layer_backward"):
        t, n, h = 4, 3, 2
        gx, dhs = (rounded(rng.standard_normal((t, n, h))) for _ in range(2))
        w, h0 = rounded(rng.standard_normal((h, h))), rounded(rng.standard_normal((n, h)))
        got, want = [], []
        for relu in (0, 1):
            if name == "rnn_layer":
                outs = [k.alloc(t * n * h, dtype)]
                k.rnn_layer(*(upload(k, a, dtype) for a in (gx, w, h0)), *outs, t, n, h, relu)
                want.append(expected(spec, gx, w, h0, relu))
            else:
                hs = rounded(KERNELS["rnn_layer"].reference(gx, w, h0, relu))
                outs = [k.alloc(t * n * h, dtype), k.alloc(h * h, dtype), k.alloc(n * h, dtype)]
                ins = (w, h0, hs, dhs)
                k.rnn_layer_backward(*(upload(k, a, dtype) for a in ins), *outs, t, n, h, relu)
                want += _reference_parts(spec, *ins, relu)
            got += [download(k, o) for o in outs]
        return (
            np.concatenate(got),
            np.concatenate([np.ravel(a) for a in want]),
            f"t, n, h = {t}, {n}, {h}; tanh then relu, outputs in parameter order",
        )
    if name == "attention_softmax":
        a = rng.standard_normal((2, 3, 5))
        a[1, 0] += 1000.0  # stability
        a = rounded(a)
        outs, wants = [], []
        for causal in (0, 1):
            out = k.alloc(30, dtype)
            k.attention_softmax(upload(k, a, dtype), out, 2, 3, 5, 0.5, causal)
            outs.append(download(k, out))
            wants.append(np.ravel(expected(spec, a, 0.5, causal)))
        return (
            np.concatenate(outs),
            np.concatenate(wants),
            "scores (2, 3, 5), scale 0.5, not causal then causal",
        )
    if name in ("attention_forward", "attention_backward"):
        return _attention_check(k, name, dtype, rng)
    if name in ("dlpack_export", "dlpack_import"):  # values, sharing both ways, lifetime
        check = (
            _dlpack_utils.check_export if name == "dlpack_export" else _dlpack_utils.check_import
        )
        return check(k, dtype, rounded(rng.standard_normal(24)))
    if name == "buffer_view":  # reads, writes through the view, a view of a view, lifetime
        step = 64 // np.dtype(dtype).itemsize  # elements per 64 bytes
        x, y, z = (rounded(rng.standard_normal(n * step)) for n in (4, 2, 1))
        parent = upload(k, x, dtype)
        view = k.buffer_view(parent, step, 2 * step)
        read = download(k, view)
        k.from_numpy(y, view)  # seen by the parent, only inside the view
        after = download(k, parent)
        inner = k.buffer_view(view, step, step)  # a view of a view
        del parent, view
        gc.collect()  # the views keep the memory alive
        k.from_numpy(z, inner)
        last = download(k, inner)
        want_after = np.array(x)
        want_after[step : 3 * step] = y
        return (
            np.concatenate([read, after, last]),
            np.concatenate([expected(spec, x, step, 2 * step), want_after, z]),
            f"{4 * step} elements, a view of 2 * {step} from element {step} read, written "
            "(seen by the parent), then a view of it written after the others died",
        )
    if name == "bernoulli_mt19937":
        return _bernoulli_check(k, dtype)
    raise AssertionError(f"the suite has no check for optional kernel {name!r}")


def _bernoulli_check(k: Any, dtype: str) -> tuple[np.ndarray, np.ndarray, str]:
    """bernoulli_mt19937 against NumPy's RandomState from random states: positions 0, a
    middle one, 623 (the first pair straddles a twist) and 624 (twist first), n 0, 1, 5
    and 2000 (several twists), p 0, 0.3 and 1. Per case: the n values, the two elements
    after them (untouched), the new key and pos; then a rejected call (a pos past 624)
    that leaves key and out as they were."""
    spec = KERNELS["bernoulli_mt19937"]
    seeds = np.random.RandomState(5)
    got, want = [], []
    for pos in (0, 300, 623, 624):
        for n in (0, 1, 5, 2000):
            for p in (0.0, 0.3, 1.0):
                key = seeds.randint(0, 2**32, size=624, dtype=np.uint64).astype(np.uint32)
                ref_key = key.copy()
                values, ref_pos = spec.reference(ref_key, pos, p, n, dtype)
                out = upload(k, np.full(n + 2, 7.0), dtype)
                new_pos = k.bernoulli_mt19937(key, pos, p, out, n)
                got += [download(k, out), key, [new_pos]]
                want += [values, [7.0, 7.0], ref_key, [ref_pos]]
    out = upload(k, np.full(4, 7.0), dtype)
    with contextlib.suppress(Exception):  # test_kernel_error checks the exception
        k.bernoulli_mt19937(key, 625, 0.5, out, 4)
    got += [download(k, out), key]
    want += [[7.0] * 4, ref_key]
    return (
        np.concatenate([np.asarray(g, dtype=np.float64) for g in got]),
        np.concatenate([np.asarray(w, dtype=np.float64) for w in want]),
        "random states at pos 0, 300, 623, 624 x n 0, 1, 5, 2000 x p 0, 0.3, 1: the n values, "
        "2 untouched elements after them, the new key and pos; then pos 625 refused, key "
        "and out unchanged",
    )


def _attention_check(k: Any, name: str, dtype: str, rng: Any) -> tuple[np.ndarray, ...]:
    """attention_forward / attention_backward in both layouts, causal or not, with and
    without a mask, against the layout-0 references (in float64): batch 2, heads 3, t_q 4,
    t_k 5, d 3, d_v 2. Forward: out then probs per case; backward: dq, dk, dv per case
    (given the reference probs)."""
    b, h, t_q, t_k, d, d_v = 2, 3, 4, 5, 3, 2
    q, kk, v, g = (
        rng.standard_normal(shape).astype(dtype)
        for shape in ((b, h, t_q, d), (b, h, t_k, d), (b, h, t_k, d_v), (b, h, t_q, d_v))
    )
    drop = ((rng.random((b, h, t_q, t_k)) > 0.25) * 2.0).astype(dtype)
    scale = 0.5
    forward = KERNELS["attention_forward"]
    backward = KERNELS["attention_backward"]
    got, want = [], []
    for layout in (0, 1):

        def put(x: np.ndarray, layout: int = layout) -> Any:  # 1: (batch, t, heads, width)
            return upload(k, np.ascontiguousarray(np.swapaxes(x, 1, 2) if layout else x), dtype)

        def get(handle: Any, shape: tuple[int, ...], layout: int = layout) -> np.ndarray:
            if not layout:
                return download(k, handle)
            stored = download(k, handle).reshape(shape[0], shape[2], shape[1], shape[3])
            return np.swapaxes(stored, 1, 2).reshape(-1)

        for causal in (0, 1):
            for mask in (None, drop):
                m = k.alloc(0, dtype) if mask is None else upload(k, mask, dtype)
                out_ref, p_ref = _reference_parts(forward, q, kk, v, mask, scale, causal)
                if name == "attention_forward":
                    out, probs = k.alloc(out_ref.size, dtype), k.alloc(p_ref.size, dtype)
                    k.attention_forward(put(q), put(kk), put(v), m, out, probs, b, h, t_q, t_k,
                                        d, d_v, layout, causal, scale)  # fmt: skip
                    got += [get(out, out_ref.shape), download(k, probs)]
                    want += [out_ref.ravel(), p_ref.ravel()]
                    continue
                grads = [k.alloc(x.size, dtype) for x in (q, kk, v)]
                k.attention_backward(put(q), put(kk), put(v), upload(k, p_ref.astype(dtype), dtype),
                                     m, put(g), *grads, b, h, t_q, t_k, d, d_v, layout, causal,
                                     scale)  # fmt: skip
                got += [get(hd, x.shape) for hd, x in zip(grads, (q, kk, v))]
                p_in = p_ref.astype(dtype)
                want += [a.ravel() for a in _reference_parts(backward, q, kk, v, p_in, mask, g,
                                                             scale)]  # fmt: skip
    return (
        np.concatenate(got),
        np.concatenate(want),
        "q (2, 3, 4, 3), k (2, 3, 5, 3), v (2, 3, 5, 2); layout 0, 1 x causal 0, 1 x mask "
        "none, 0/2 dropout-like",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", [spec.name for spec in OPTIONAL])
def test_optional_kernel(
    needle_device: Any, needle_backend_name: str, name: str, dtype: str
) -> None:
    if not needle_device.has_kernel(name):
        pytest.skip(f"backend {needle_backend_name!r} does not declare optional kernel {name}")
    got, want, desc = _optional_check(needle_device.kernels, name, dtype)
    if KERNELS[name].exact:
        tol: dict[str, Any] = {"rtol": 0.0, "atol": 0.0}
    elif dtype == "float32":
        tol = {"rtol": 1e-4, "atol": 1e-5}
    else:
        tol = {"dtype": dtype}
    assert_close(
        got,
        want,
        **tol,
        what=f"optional kernel {name}: {desc}, {dtype}",
        repro=f"see needle_conformance/test_kernels.py::_optional_check({name!r})",
    )
