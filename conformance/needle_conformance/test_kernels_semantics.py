"""Area ``kernels`` (continued): the semantics the contract states, for every kernel.

* IEEE behaviour: ``±0``, ``±inf``, NaN, huge and tiny values, negative bases, exact
  comparisons, scalars rounded to the buffer's dtype, in every position of a row.
* Sizes that reach real code paths: around powers of two (SIMD widths, unroll factors,
  thread chunks, GEMM tiles), many rows and few rows, one-row operands, many channels,
  non-square images. The sizes are ``2**k`` and ``2**k ± 1``, not one backend's constants.
* Memory discipline: inputs are left unchanged, a kernel that raises leaves ``out``
  unchanged, ``out`` may alias an input where the contract allows it, ``to_numpy``
  returns an owning copy and ``from_numpy`` copies.

Every failure names the kernel and prints a reproducer. Only ``alloc``, ``from_numpy``
and ``to_numpy`` are used besides the kernel under test (so the failure points at it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from needle.backends import KERNELS, ErrorCase, KernelSpec, kernels_in_family

from . import _state
from ._kernel_utils import download, error_args, error_repro, expected, header, upload
from .assertions import assert_close, fail

pytestmark = pytest.mark.kernels
DTYPES = _state.dtypes()

EWISE = kernels_in_family("ewise_binary")
SCALAR = kernels_in_family("scalar_binary")
UNARY = kernels_in_family("ewise_unary")
ELEMENTWISE = (*EWISE, *SCALAR, *UNARY)

# Special values, as code (the reproducer prints the same lines).
SPECIALS = (
    "[0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.5, -0.5, 0.1, 1e30, -1e30, "
    "100.0, -100.0, 800.0, -800.0, np.inf, -np.inf, np.nan]"
)
# 2**k and 2**k +- 1 around SIMD widths (4..64 lanes), unrolled loops, thread chunks.
SIZES = (1, 7, 9, 15, 17, 31, 33, 63, 64, 65, 127, 129, 255, 257, 1025, 4097, 65537, 131073)


def _ids(specs: tuple[KernelSpec, ...]) -> list[str]:
    return [s.name for s in specs]


def _exec(lines: list[str]) -> dict[str, Any]:
    """Run data-making lines (the same the reproducer prints); return their namespace."""
    ns: dict[str, Any] = {"np": np}
    with np.errstate(all="ignore"):
        exec("\n".join(lines), ns)
    return ns


def _special_lines(dtype: str) -> list[str]:
    return [
        f"s = np.array({SPECIALS}, dtype={dtype!r})",
        "s = np.append(s, np.nextafter(s[2], s[4]))  # 1 + one ulp: == must be exact",
    ]


def _upload_lines(var: str, src: str, dtype: str) -> list[str]:
    return [
        f"{var} = k.alloc({src}.size, {dtype!r})",
        f"k.from_numpy(np.ascontiguousarray({src}, dtype={dtype!r}).reshape(-1), {var})",
    ]


def _tol(spec: KernelSpec, dtype: str, scale: float = 1.0) -> dict[str, Any]:
    if spec.exact:
        return {"rtol": 0.0, "atol": 0.0}
    rtol, atol = {"float32": (2e-5, 1e-5), "float64": (1e-9, 1e-12)}.get(dtype, (2e-5, 1e-5))
    return {"rtol": rtol * scale, "atol": atol * scale}


def _in_dtype(values: np.ndarray, dtype: str) -> np.ndarray:
    """The float64 reference rounded to ``dtype`` (overflow gives inf, as the kernel's)."""
    with np.errstate(all="ignore"):
        return np.asarray(values).astype(dtype).astype(np.float64)


def _sentinel_out(k: Any, n: int, dtype: str) -> Any:
    """An output buffer pre-filled with 12345 (via from_numpy), so unwritten tails show."""
    return upload(k, np.full(n, 12345.0), dtype)


SENTINEL_LINES = ["out = k.alloc({n}, {dtype!r})", "k.from_numpy(np.full({n}, 12345.0), out)"]


def _sentinel_lines(n: int, dtype: str) -> list[str]:
    return [line.format(n=n, dtype=dtype) for line in SENTINEL_LINES]


# --- IEEE semantics --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", EWISE, ids=_ids(EWISE))
def test_ieee_ewise_binary(
    needle_kernels: Any, needle_backend_name: str, spec: KernelSpec, dtype: str
) -> None:
    """Every pair of special values (0, -0, +-inf, NaN, huge, negative bases...)."""
    k = needle_kernels
    lines = [*_special_lines(dtype), "a_np = np.repeat(s, s.size)", "b_np = np.tile(s, s.size)"]
    ns = _exec(lines)
    a_np, b_np = ns["a_np"], ns["b_np"]
    n = a_np.size
    a, b, out = upload(k, a_np, dtype), upload(k, b_np, dtype), _sentinel_out(k, n, dtype)
    getattr(k, spec.name)(a, b, out)
    repro = [
        *header(needle_backend_name),
        *lines,
        *_upload_lines("a", "a_np", dtype),
        *_upload_lines("b", "b_np", dtype),
        *_sentinel_lines(n, dtype),
        f"k.{spec.name}(a, b, out)",
        f"print(list(zip(a_np, b_np, k.to_numpy(out, ({n},), (1,), 0))))",
    ]
    assert_close(
        download(k, out),
        _in_dtype(expected(spec, a_np, b_np), dtype),
        what=f"kernel {spec.name}: special values (0, -0, +-inf, NaN, 1e30, negative "
        f"bases, 1 + ulp), all {n} pairs, {dtype}",
        repro="\n".join(repro),
        **_tol(spec, dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", SCALAR, ids=_ids(SCALAR))
def test_ieee_scalar_binary(
    needle_kernels: Any, needle_backend_name: str, spec: KernelSpec, dtype: str
) -> None:
    """Every special value as the scalar, applied in the buffer's dtype (0.1 == 0.1)."""
    k = needle_kernels
    lines = _special_lines(dtype)
    ns = _exec(lines)
    a_np = ns["s"]
    n = a_np.size
    a = upload(k, a_np, dtype)
    values = [float(v) for v in np.array(eval(SPECIALS, {"np": np}))] + [0.1, 1 / 3]
    for value in values:
        out = _sentinel_out(k, n, dtype)
        getattr(k, spec.name)(a, value, out)
        repro = [
            *header(needle_backend_name),
            *lines,
            *_upload_lines("a", "s", dtype),
            *_sentinel_lines(n, dtype),
            f"k.{spec.name}(a, {value!r}, out)",
            f"print(list(zip(s, k.to_numpy(out, ({n},), (1,), 0))))",
        ]
        rounded = float(np.asarray(value, dtype=dtype))
        assert_close(
            download(k, out),
            _in_dtype(expected(spec, a_np, rounded), dtype),
            what=f"kernel {spec.name}: special values with value {value!r} (rounded to "
            f"{dtype}: {rounded!r}), {dtype}",
            repro="\n".join(repro),
            **_tol(spec, dtype),
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", UNARY, ids=_ids(UNARY))
def test_ieee_ewise_unary(
    needle_kernels: Any, needle_backend_name: str, spec: KernelSpec, dtype: str
) -> None:
    """Negative inputs of log/sqrt, overflow of exp, tanh of large values, +-0, inf, NaN."""
    k = needle_kernels
    lines = [*_special_lines(dtype), "a_np = np.concatenate([s, s * 0.37, s + 50.0])"]
    ns = _exec(lines)
    a_np = ns["a_np"]
    n = a_np.size
    a, out = upload(k, a_np, dtype), _sentinel_out(k, n, dtype)
    getattr(k, spec.name)(a, out)
    repro = [
        *header(needle_backend_name),
        *lines,
        *_upload_lines("a", "a_np", dtype),
        *_sentinel_lines(n, dtype),
        f"k.{spec.name}(a, out)",
        f"print(list(zip(a_np, k.to_numpy(out, ({n},), (1,), 0))))",
    ]
    assert_close(
        download(k, out),
        _in_dtype(expected(spec, a_np), dtype),
        what=f"kernel {spec.name}: special values (negative, +-0, +-inf, NaN, 100, 800, "
        f"1e30), {dtype}",
        repro="\n".join(repro),
        **_tol(spec, dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_ieee_fill(needle_kernels: Any, needle_backend_name: str, dtype: str) -> None:
    """fill rounds the value to the buffer's dtype (0.1, 1/3, 1e300, NaN...), every element."""
    k = needle_kernels
    n = 4097
    for value in (0.1, 1 / 3, -1e-300, 1e300, float("nan"), -0.0):
        out = _sentinel_out(k, n, dtype)
        k.fill(out, value)
        repro = [
            *header(needle_backend_name),
            *_sentinel_lines(n, dtype),
            f"k.fill(out, {value!r})",
            f"print(k.to_numpy(out, ({n},), (1,), 0))",
        ]
        assert_close(
            download(k, out),
            _in_dtype(np.full(n, value), dtype),
            rtol=0,
            atol=0,
            what=f"kernel fill: {n} elements with {value!r}, {dtype}",
            repro="\n".join(repro),
        )


ROW_KERNELS = (
    *kernels_in_family("reduce"),
    *(KERNELS[n] for n in ("logsumexp_last", "softmax_last", "reduce_argmax")),
)


def _row_kernel(needle_device: Any, spec: KernelSpec, backend: str) -> Any:
    if not spec.required and not needle_device.has_kernel(spec.name):
        pytest.skip(f"backend {backend!r} does not declare optional kernel {spec.name}")
    return needle_device.kernels


def _out_size(spec: KernelSpec, rows: int, size: int) -> int:
    return rows * size if spec.name == "softmax_last" else rows


def _check_rows(
    k: Any, backend: str, spec: KernelSpec, dtype: str, lines: list[str], size: int, desc: str
) -> None:
    """Run row kernel ``spec`` on ``x`` (made by ``lines``) and compare with the reference."""
    x = _exec(lines)["x"]
    rows = x.shape[0]
    n_out = _out_size(spec, rows, size)
    a, out = upload(k, x, dtype), _sentinel_out(k, n_out, dtype)
    getattr(k, spec.name)(a, out, size)
    repro = [
        *header(backend),
        *lines,
        *_upload_lines("a", "x", dtype),
        *_sentinel_lines(n_out, dtype),
        f"k.{spec.name}(a, out, {size})",
        f"print(k.to_numpy(out, ({n_out},), (1,), 0))",
    ]
    want = _in_dtype(expected(spec, x.astype(dtype)).reshape(-1), dtype)
    scale = 1.0 if spec.name == "reduce_argmax" else 10.0 * max(1.0, np.sqrt(size))
    assert_close(
        download(k, out),
        want,
        what=f"kernel {spec.name}: {desc}, {rows} rows of reduce_size {size}, {dtype}",
        repro="\n".join(repro),
        **_tol(spec, dtype, 1.0 if spec.exact else scale),
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", ["np.nan", "np.inf", "-np.inf"])
@pytest.mark.parametrize("spec", ROW_KERNELS, ids=_ids(ROW_KERNELS))
def test_ieee_rows(
    needle_device: Any, needle_backend_name: str, spec: KernelSpec, dtype: str, value: str
) -> None:
    """A special value in every position of a row (row j holds it at column j), plus rows
    of all -inf, all +inf and all negative numbers."""
    k = _row_kernel(needle_device, spec, needle_backend_name)
    for size in (1, 2, 7, 9, 33, 70):
        lines = [
            "rng = np.random.default_rng(0)",
            f"x = rng.standard_normal(({size}, {size})) - 2.0",
            f"x[np.arange({size}), np.arange({size})] = {value}",
            f"x = np.vstack([x, np.full((1, {size}), -np.inf), np.full((1, {size}), np.inf),"
            f" -np.arange(1.0, {size} + 1.0)[None, :]])",
            f"x = x.astype({dtype!r})",
        ]
        _check_rows(k, needle_backend_name, spec, dtype, lines, size, f"{value} in every position")


@pytest.mark.parametrize("dtype", DTYPES)
def test_ieee_edge_rows_logsumexp(needle_device: Any, needle_backend_name: str, dtype: str) -> None:
    """logsumexp_last: reduce_size 0 gives -inf; rows of all -inf give -inf."""
    spec = KERNELS["logsumexp_last"]
    k = _row_kernel(needle_device, spec, needle_backend_name)
    a, out = k.alloc(0, dtype), _sentinel_out(k, 3, dtype)
    k.logsumexp_last(a, out, 0)
    repro = [
        *header(needle_backend_name),
        f"a = k.alloc(0, {dtype!r})",
        *_sentinel_lines(3, dtype),
        "k.logsumexp_last(a, out, 0)",
        "print(k.to_numpy(out, (3,), (1,), 0))",
    ]
    assert_close(
        download(k, out),
        np.full(3, -np.inf),
        what=f"kernel logsumexp_last: 3 rows of reduce_size 0 (expected -inf), {dtype}",
        repro="\n".join(repro),
    )
    lines = [f"x = np.full((2, 5), -np.inf, dtype={dtype!r})"]
    _check_rows(k, needle_backend_name, spec, dtype, lines, 5, "rows of all -inf (expected -inf)")


@pytest.mark.parametrize("dtype", DTYPES)
def test_ieee_where(needle_device: Any, needle_backend_name: str, dtype: str) -> None:
    """ewise_where selects a where cond != 0: negative, NaN and -0.0 conditions included."""
    if not needle_device.has_kernel("ewise_where"):
        pytest.skip(f"backend {needle_backend_name!r} does not declare optional kernel ewise_where")
    k = needle_device.kernels
    lines = [
        *_special_lines(dtype),
        "c_np = np.tile(s, 4)",
        "a_np = np.arange(c_np.size, dtype=float)",
        "b_np = -1.0 - np.arange(c_np.size, dtype=float)",
    ]
    ns = _exec(lines)
    c_np, a_np, b_np = ns["c_np"], ns["a_np"], ns["b_np"]
    n = c_np.size
    c, a, b = (upload(k, x, dtype) for x in (c_np, a_np, b_np))
    out = _sentinel_out(k, n, dtype)
    k.ewise_where(c, a, b, out)
    repro = [
        *header(needle_backend_name),
        *lines,
        *_upload_lines("c", "c_np", dtype),
        *_upload_lines("a", "a_np", dtype),
        *_upload_lines("b", "b_np", dtype),
        *_sentinel_lines(n, dtype),
        "k.ewise_where(c, a, b, out)",
        f"print(list(zip(c_np, k.to_numpy(out, ({n},), (1,), 0))))",
    ]
    assert_close(
        download(k, out),
        expected(KERNELS["ewise_where"], c_np, a_np, b_np),
        rtol=0,
        atol=0,
        what=f"kernel ewise_where: cond of special values (negative, -0.0, NaN), {dtype}",
        repro="\n".join(repro),
    )


# --- sizes that reach real code paths --------------------------------------------------
def _kind_lines(spec: KernelSpec, n: int, dtype: str) -> tuple[list[str], list[str]]:
    """Lines making the inputs of an element-wise kernel at size n, and their names."""
    from .opdb import KINDS

    names = ["a_np", "b_np"][: 2 if spec.family == "ewise_binary" else 1]
    lines = ["rng = np.random.default_rng(7)"]
    for var, kind in zip(names, spec.inputs):
        expr = KINDS[kind].format(shape=(n,), size=n)
        lines.append(f"{var} = ({expr}).astype({dtype!r})")
    return lines, names


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", ELEMENTWISE, ids=_ids(ELEMENTWISE))
def test_sizes_elementwise(
    needle_kernels: Any, needle_backend_name: str, spec: KernelSpec, dtype: str
) -> None:
    """Sizes 2**k and 2**k +- 1 up to 131073: SIMD tails, unrolled loops, thread chunks."""
    k = needle_kernels
    top = max(SIZES)
    lines, names = _kind_lines(spec, top, dtype)
    ns = _exec(lines)
    value = spec.scalars[0] if spec.scalars else None
    for n in SIZES:
        arrays = [ns[v][:n] for v in names]
        handles = [upload(k, x, dtype) for x in arrays]
        out = _sentinel_out(k, n, dtype)
        args = [handles[0], value, out] if value is not None else [*handles, out]
        getattr(k, spec.name)(*args)
        if value is not None:
            want = expected(spec, arrays[0], float(np.asarray(value, dtype)))
            call = f"k.{spec.name}(a, {value!r}, out)"
        else:
            want = expected(spec, *arrays)
            call = f"k.{spec.name}({', '.join(['a', 'b'][: len(arrays)])}, out)"
        repro = [
            *header(needle_backend_name),
            *lines,
            *(f"{v} = {v}[:{n}]" for v in names),
            *(line for v in names for line in _upload_lines(v[0], v, dtype)),
            *_sentinel_lines(n, dtype),
            call,
            f"print(k.to_numpy(out, ({n},), (1,), 0))",
        ]
        assert_close(
            download(k, out),
            _in_dtype(want, dtype),
            what=f"kernel {spec.name}: {n} elements, {dtype}",
            repro="\n".join(repro),
            **_tol(spec, dtype),
        )


ROW_SHAPES = (
    (1, 1),
    (1, 65),
    (1, 4097),
    (3, 17),
    (65, 1),
    (67, 9),
    (129, 33),
    (257, 3),
    (1025, 7),
    (2, 65537),
    (1, 131073),
)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", ROW_KERNELS, ids=_ids(ROW_KERNELS))
def test_sizes_rows(
    needle_device: Any, needle_backend_name: str, spec: KernelSpec, dtype: str
) -> None:
    """Many short rows, few long rows, one row, rows of one element."""
    k = _row_kernel(needle_device, spec, needle_backend_name)
    for rows, size in ROW_SHAPES:
        lines = [
            "rng = np.random.default_rng(3)",
            f"x = rng.standard_normal(({rows}, {size})).astype({dtype!r})",
        ]
        if spec.name == "reduce_argmax":  # distinct values: no ties to argue about
            lines[1] = (
                f"x = (rng.permutation({rows * size}).reshape({rows}, {size}) "
                f"/ {rows * size}).astype({dtype!r})"
            )
        _check_rows(k, needle_backend_name, spec, dtype, lines, size, "random rows")


MATMUL_SHAPES = (
    (1, 1, 1),
    (1, 67, 1),
    (1, 67, 33),
    (33, 67, 1),
    (17, 1, 19),
    (65, 33, 17),
    (129, 5, 67),
    (97, 131, 70),
    (300, 17, 3),
    (3, 17, 300),
    (257, 67, 65),
)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sizes_matmul(needle_kernels: Any, needle_backend_name: str, dtype: str) -> None:
    """Odd remainders in m, n and p; one row, one column; a product big enough to thread."""
    k = needle_kernels
    for m, n, p in MATMUL_SHAPES:
        lines = [
            "rng = np.random.default_rng(5)",
            f"a_np = rng.standard_normal(({m}, {n})).astype({dtype!r})",
            f"b_np = rng.standard_normal(({n}, {p})).astype({dtype!r})",
        ]
        ns = _exec(lines)
        a, b = upload(k, ns["a_np"], dtype), upload(k, ns["b_np"], dtype)
        out = _sentinel_out(k, m * p, dtype)
        k.matmul(a, b, out, m, n, p)
        repro = [
            *header(needle_backend_name),
            *lines,
            *_upload_lines("a", "a_np", dtype),
            *_upload_lines("b", "b_np", dtype),
            *_sentinel_lines(m * p, dtype),
            f"k.matmul(a, b, out, {m}, {n}, {p})",
            f"print(k.to_numpy(out, ({m}, {p}), ({p}, 1), 0))",
        ]
        tol = 1e-4 if dtype == "float32" else 1e-10
        assert_close(
            download(k, out).reshape(m, p),
            expected(KERNELS["matmul"], ns["a_np"], ns["b_np"]),
            rtol=tol,
            atol=tol * np.sqrt(n),
            what=f"kernel matmul: ({m}, {n}) @ ({n}, {p}), {dtype}",
            repro="\n".join(repro),
        )


BATCHED_SHAPES = (
    (1, 1, 1, 1),
    (1, 1, 5, 7),
    (3, 1, 5, 7),
    (3, 5, 1, 7),
    (3, 7, 5, 1),
    (2, 65, 33, 17),
)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sizes_batched_matmul(needle_device: Any, needle_backend_name: str, dtype: str) -> None:
    """One-row and one-column operands in a batch, odd remainders."""
    if not needle_device.has_kernel("batched_matmul"):
        pytest.skip(
            f"backend {needle_backend_name!r} does not declare optional kernel batched_matmul"
        )
    k = needle_device.kernels
    for batch, m, n, p in BATCHED_SHAPES:
        lines = [
            "rng = np.random.default_rng(6)",
            f"a_np = rng.standard_normal(({batch}, {m}, {n})).astype({dtype!r})",
            f"b_np = rng.standard_normal(({batch}, {n}, {p})).astype({dtype!r})",
        ]
        ns = _exec(lines)
        a, b = upload(k, ns["a_np"], dtype), upload(k, ns["b_np"], dtype)
        size = batch * m * p
        out = _sentinel_out(k, size, dtype)
        k.batched_matmul(a, b, out, batch, m, n, p)
        repro = [
            *header(needle_backend_name),
            *lines,
            *_upload_lines("a", "a_np", dtype),
            *_upload_lines("b", "b_np", dtype),
            *_sentinel_lines(size, dtype),
            f"k.batched_matmul(a, b, out, {batch}, {m}, {n}, {p})",
            f"print(k.to_numpy(out, ({size},), (1,), 0))",
        ]
        tol = 1e-4 if dtype == "float32" else 1e-10
        assert_close(
            download(k, out),
            expected(KERNELS["batched_matmul"], ns["a_np"], ns["b_np"]).reshape(-1),
            rtol=tol,
            atol=tol * np.sqrt(n),
            what=f"kernel batched_matmul: ({batch}, {m}, {n}) @ ({batch}, {n}, {p}), {dtype}",
            repro="\n".join(repro),
        )


# (n, h, w, c_in, k, c_out, stride): non-square images, more than 4, 8, 16 channels.
CONV_SHAPES = (
    (1, 5, 5, 1, 3, 1, 1),
    (2, 7, 5, 5, 3, 4, 1),
    (1, 6, 9, 9, 3, 17, 2),
    (2, 5, 8, 17, 1, 3, 1),
    (1, 9, 7, 3, 3, 5, 2),
    (1, 4, 6, 16, 4, 8, 1),
    (1, 3, 4, 33, 3, 65, 1),
)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sizes_conv2d_nhwc(needle_device: Any, needle_backend_name: str, dtype: str) -> None:
    if not needle_device.has_kernel("conv2d_nhwc"):
        pytest.skip(f"backend {needle_backend_name!r} does not declare optional kernel conv2d_nhwc")
    k = needle_device.kernels
    for n, h, w, c_in, kk, c_out, stride in CONV_SHAPES:
        lines = [
            "rng = np.random.default_rng(8)",
            f"x_np = rng.standard_normal(({n}, {h}, {w}, {c_in})).astype({dtype!r})",
            f"w_np = rng.standard_normal(({kk}, {kk}, {c_in}, {c_out})).astype({dtype!r})",
        ]
        ns = _exec(lines)
        ho, wo = (h - kk) // stride + 1, (w - kk) // stride + 1
        size = n * ho * wo * c_out
        x, wt = upload(k, ns["x_np"], dtype), upload(k, ns["w_np"], dtype)
        out = _sentinel_out(k, size, dtype)
        args = (n, h, w, c_in, kk, c_out, stride)
        k.conv2d_nhwc(x, wt, out, *args)
        repro = [
            *header(needle_backend_name),
            *lines,
            *_upload_lines("x", "x_np", dtype),
            *_upload_lines("w", "w_np", dtype),
            *_sentinel_lines(size, dtype),
            f"k.conv2d_nhwc(x, w, out, {', '.join(map(str, args))})",
            f"print(k.to_numpy(out, ({size},), (1,), 0))",
        ]
        tol = 1e-4 if dtype == "float32" else 1e-10
        assert_close(
            download(k, out),
            expected(KERNELS["conv2d_nhwc"], ns["x_np"], ns["w_np"], stride).reshape(-1),
            rtol=tol,
            atol=tol * np.sqrt(kk * kk * c_in),
            what=f"kernel conv2d_nhwc: x {(n, h, w, c_in)}, w {(kk, kk, c_in, c_out)}, "
            f"stride {stride}, {dtype}",
            repro="\n".join(repro),
        )


# --- memory discipline -----------------------------------------------------------------
def _sample(k: Any, spec: KernelSpec, dtype: str) -> tuple[list[Any], list[str], list[str]]:
    """A valid call of ``spec``: (args, the lines that build them, the call's argument
    names). Array inputs hold seeded normal data (positive where the kernel needs it)."""
    rng_line = "rng = np.random.default_rng(21)"
    kind = {"positive": "rng.uniform(0.5, 2.0, {n})", "nonzero": "rng.uniform(0.5, 2.0, {n})"}

    def data(var: str, n: int, how: str = "normal") -> list[str]:
        expr = kind.get(how, "rng.standard_normal({n})").format(n=n)
        return [f"{var}_np = ({expr}).astype({dtype!r})", *_upload_lines(var, f"{var}_np", dtype)]

    fam, name = spec.family, spec.name
    n = 70
    lines = [rng_line]
    if fam == "ewise_binary":
        lines += data("a", n, spec.inputs[0]) + data("b", n, spec.inputs[1]) + data("out", n)
        names = ["a", "b", "out"]
    elif fam == "scalar_binary":
        lines += data("a", n, spec.inputs[0]) + data("out", n)
        names = ["a", repr(spec.scalars[0]), "out"]
    elif fam == "ewise_unary":
        lines += data("a", n, spec.inputs[0]) + data("out", n)
        names = ["a", "out"]
    elif fam == "reduce" or name in ("logsumexp_last", "reduce_argmax"):
        lines += data("a", 5 * 14) + data("out", 5)
        names = ["a", "out", "14"]
    elif name == "softmax_last":
        lines += data("a", 5 * 14) + data("out", 5 * 14)
        names = ["a", "out", "14"]
    elif name == "matmul":
        lines += data("a", 5 * 6) + data("b", 6 * 7) + data("out", 5 * 7)
        names = ["a", "b", "out", "5", "6", "7"]
    elif name == "batched_matmul":
        lines += data("a", 2 * 5 * 6) + data("b", 2 * 6 * 7) + data("out", 2 * 5 * 7)
        names = ["a", "b", "out", "2", "5", "6", "7"]
    elif name == "conv2d_nhwc":
        lines += data("x", 2 * 6 * 5 * 3) + data("w", 3 * 3 * 3 * 4) + data("out", 2 * 4 * 3 * 4)
        names = ["x", "w", "out", "2", "6", "5", "3", "3", "4", "1"]
    elif name == "ewise_where":
        lines += [
            f"cond_np = (rng.random({n}) < 0.5).astype({dtype!r})",
            *_upload_lines("cond", "cond_np", dtype),
        ]
        lines += data("a", n) + data("b", n) + data("out", n)
        names = ["cond", "a", "b", "out"]
    elif name == "compact":
        lines += data("a", 14) + data("out", 12)
        names = ["a", "out", "(3, 4)", "(1, 3)", "2"]
    elif name == "ewise_setitem":
        lines += data("a", 12) + data("out", 14)
        names = ["a", "out", "(3, 4)", "(1, 3)", "2"]
    elif name == "scalar_setitem":
        lines += data("out", 14)
        names = ["12", "-1.5", "out", "(3, 4)", "(1, 3)", "2"]
    elif name == "fill":
        lines += data("out", n)
        names = ["out", "2.5"]
    elif name == "astype":
        lines += data("a", n) + data("out", n)
        names = ["a", "out"]
    elif name == "to_numpy":
        lines += data("a", 14)
        names = ["a", "(3, 4)", "(1, 3)", "2"]
    else:
        raise AssertionError(f"no sample call for kernel {name}")
    ns = {"np": np, "k": k}
    exec("\n".join(lines), ns)
    args = [ns[v] if v in ns else eval(v) for v in names]
    return args, lines, names


_SAMPLED_OPTIONAL = (
    "batched_matmul",
    "logsumexp_last",
    "softmax_last",
    "conv2d_nhwc",
    "ewise_where",
    "reduce_argmax",
)
MEMORY_KERNELS = tuple(
    s
    for s in KERNELS.values()
    if (s.required and s.name not in ("alloc", "from_numpy")) or s.name in _SAMPLED_OPTIONAL
)


def _kernel_or_skip(needle_device: Any, spec: KernelSpec, backend: str) -> Any:
    if not spec.required and not needle_device.has_kernel(spec.name):
        pytest.skip(f"backend {backend!r} does not declare optional kernel {spec.name}")
    return needle_device.kernels


def _bytes(k: Any, h: Any) -> bytes:
    return np.ascontiguousarray(download(k, h)).tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", MEMORY_KERNELS, ids=_ids(MEMORY_KERNELS))
def test_memory_inputs_unchanged(
    needle_device: Any, needle_backend_name: str, spec: KernelSpec, dtype: str
) -> None:
    """A kernel writes only ``out``: every other handle it is given is left as it was."""
    k = _kernel_or_skip(needle_device, spec, needle_backend_name)
    args, lines, names = _sample(k, spec, dtype)
    inputs = [
        (v, a)
        for v, a, p in zip(names, args, spec.params)
        if p != "out" and hasattr(a, "size") and not isinstance(a, np.ndarray)
    ]
    before = {v: _bytes(k, a) for v, a in inputs}
    getattr(k, spec.name)(*args)
    for v, a in inputs:
        if _bytes(k, a) != before[v]:
            repro = [
                *header(needle_backend_name),
                *lines,
                f"k.{spec.name}({', '.join(names)})",
                f"print(k.to_numpy({v}, ({a.size},), (1,), 0) - {v}_np)  # should be zeros",
            ]
            assert_close(
                download(k, a),
                np.frombuffer(before[v], dtype=dtype),
                what=f"kernel {spec.name}: changed its input {v!r} ({dtype}); a kernel may "
                "write only out",
                repro="\n".join(repro),
            )


ALIASING = (*ELEMENTWISE, *(KERNELS[n] for n in ("ewise_where", "softmax_last")))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spec", ALIASING, ids=_ids(ALIASING))
def test_memory_out_aliases_input(
    needle_device: Any, needle_backend_name: str, spec: KernelSpec, dtype: str
) -> None:
    """``out`` may be the same handle as an input (the contract lists where): the result
    equals the one with a separate ``out``."""
    k = _kernel_or_skip(needle_device, spec, needle_backend_name)
    args, _, _ = _sample(k, spec, dtype)
    out_i = spec.params.index("out")
    getattr(k, spec.name)(*args)
    want = download(k, args[out_i]).astype(np.float64)
    for i, p in enumerate(spec.params):
        if i == out_i or not hasattr(args[i], "size") or isinstance(args[i], np.ndarray):
            continue
        args2, lines2, names2 = _sample(k, spec, dtype)
        args2[out_i] = args2[i]
        names2[out_i] = names2[i]
        getattr(k, spec.name)(*args2)
        repro = [
            *header(needle_backend_name),
            *lines2,
            f"k.{spec.name}({', '.join(names2)})  # out is {names2[i]}",
            f"print(k.to_numpy({names2[i]}, ({args2[i].size},), (1,), 0))",
        ]
        assert_close(
            download(k, args2[i]),
            want,
            what=f"kernel {spec.name}: out is the same handle as input {p!r} ({dtype}); the "
            "contract allows it and the result must equal the one with a separate out",
            repro="\n".join(repro),
            rtol=0,
            atol=0,
        )


_ERROR_CASES = [
    (spec, case)
    for spec in KERNELS.values()
    if spec.required and "out" in spec.params
    for case in spec.errors
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "spec, case", _ERROR_CASES, ids=[f"{spec.name}_{case.tag}" for spec, case in _ERROR_CASES]
)
def test_memory_error_leaves_out_unchanged(
    needle_kernels: Any,
    needle_backend_name: str,
    dtype: str,
    spec: KernelSpec,
    case: ErrorCase,
) -> None:
    """A kernel that rejects its input has not written any of ``out`` first."""
    k = needle_kernels
    args = error_args(k, spec, case, dtype, DTYPES)
    out = args[spec.params.index("out")]
    if not hasattr(out, "size") or isinstance(out, np.ndarray):
        pytest.skip(f"{spec.name}: error case {case.tag} has no out handle")
    before = _bytes(k, out)
    repro = error_repro(k, needle_backend_name, spec.name, args)
    try:
        getattr(k, spec.name)(*args)
    except Exception:
        pass
    else:
        pytest.skip(f"{spec.name} accepted {case.description} (test_kernel_error reports it)")
    if _bytes(k, out) != before:
        fail(
            f"kernel {spec.name}: error input {spec.name}_{case.tag} ({case.description}, "
            f"{dtype}) raised, but only after writing out",
            f"out before: {np.frombuffer(before, dtype=dtype).tolist()}\n"
            f"  out after:  {download(k, out).tolist()}",
            repro,
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_memory_to_numpy_owns_its_memory(
    needle_kernels: Any, needle_backend_name: str, dtype: str
) -> None:
    """``to_numpy`` returns a copy: later writes to the buffer do not show in it, and
    writes to it do not reach the buffer."""
    k = needle_kernels
    data = np.arange(12, dtype=dtype)
    h = upload(k, data, dtype)
    views: list[tuple[str, np.ndarray]] = [
        ("(12,), (1,), 0", k.to_numpy(h, (12,), (1,), 0)),
        ("(3, 4), (4, 1), 0", k.to_numpy(h, (3, 4), (4, 1), 0)),
        ("(2, 3), (1, 2), 3", k.to_numpy(h, (2, 3), (1, 2), 3)),
    ]
    snapshots = [np.array(v, copy=True) for _, v in views]
    k.from_numpy(np.full(12, -7.0, dtype=dtype), h)
    for (desc, arr), snap in zip(views, snapshots):
        repro = "\n".join(
            [
                *header(needle_backend_name),
                f"h = k.alloc(12, {dtype!r})",
                f"k.from_numpy(np.arange(12, dtype={dtype!r}), h)",
                f"arr = k.to_numpy(h, {desc})",
                f"k.from_numpy(np.full(12, -7.0, dtype={dtype!r}), h)",
                "print(arr)  # must still hold the values from before",
            ]
        )
        assert_close(
            arr,
            snap,
            rtol=0,
            atol=0,
            what=f"kernel to_numpy: the array for view {desc} changed when the buffer was "
            f"written later ({dtype}); to_numpy must return an owning copy",
            repro=repro,
        )
    k.from_numpy(data, h)
    arr = k.to_numpy(h, (12,), (1,), 0)
    if arr.flags.writeable:
        arr[:] = 99.0
        assert_close(
            download(k, h),
            data,
            rtol=0,
            atol=0,
            what=f"kernel to_numpy: writing to the returned array changed the buffer ({dtype})",
            repro="\n".join(
                [
                    *header(needle_backend_name),
                    f"h = k.alloc(12, {dtype!r})",
                    f"k.from_numpy(np.arange(12, dtype={dtype!r}), h)",
                    "k.to_numpy(h, (12,), (1,), 0)[:] = 99.0",
                    "print(k.to_numpy(h, (12,), (1,), 0))",
                ]
            ),
        )


@pytest.mark.parametrize("dtype", DTYPES)
def test_memory_from_numpy_copies(
    needle_kernels: Any, needle_backend_name: str, dtype: str
) -> None:
    """``from_numpy`` copies: changing the source array afterwards leaves the buffer alone."""
    k = needle_kernels
    src = np.arange(9, dtype=dtype)
    h = k.alloc(9, dtype)
    k.from_numpy(src, h)
    src[:] = -1.0
    assert_close(
        download(k, h),
        np.arange(9, dtype=np.float64),
        rtol=0,
        atol=0,
        what=f"kernel from_numpy: the buffer changed when the source array was changed "
        f"afterwards ({dtype}); from_numpy must copy",
        repro="\n".join(
            [
                *header(needle_backend_name),
                f"src = np.arange(9, dtype={dtype!r})",
                f"h = k.alloc(9, {dtype!r})",
                "k.from_numpy(src, h)",
                "src[:] = -1.0",
                "print(k.to_numpy(h, (9,), (1,), 0))",
            ]
        ),
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_scalar_setitem_on_a_huge_broadcast_view(
    needle_kernels: Any, needle_backend_name: str, dtype: str
) -> None:
    """A view of 2**40 repeats of one element (stride 0) is one element to write: the
    kernel must not loop over the repeats (it runs in a child process with a timeout)."""
    from .test_kernels_fuzz import Buf, Call, _execute, _execute_isolated

    args = [2**40, 2.5, Buf(4, dtype), (2**20, 2**20), (0, 0), 1]
    call = Call("scalar_setitem", args, True, out_index=2)
    kind, payload = (
        _execute_isolated(needle_kernels, call)
        if hasattr(__import__("os"), "fork")
        else _execute(needle_kernels, call)
    )
    what = "kernel scalar_setitem: a (2**20, 2**20) view with strides (0, 0) over element 1"
    repro = call.repro(needle_backend_name)
    if kind != "ok":
        fail(what, f"{kind}: {payload}", repro)
    want = np.random.default_rng(0).standard_normal(4).astype(dtype).astype(np.float64)
    want[1] = 2.5
    assert_close(payload, want, rtol=0, atol=0, what=what, repro=repro)
