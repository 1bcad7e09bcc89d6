"""Area ``ndarray``: NDArray views, compact, setitem, broadcasting, reductions, matmul,
flip, pad, astype and device round trips, with Hypothesis-drawn shapes and indices."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from needle.backend_ndarray import NDArray

from . import _state
from .assertions import assert_close

pytestmark = pytest.mark.ndarray
DTYPES = _state.dtypes()
SETTINGS = _state.hypothesis_settings()

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


def _make(
    dev: Any, shape: tuple[int, ...], seed: int, dtype: str
) -> tuple[NDArray, np.ndarray, list[str]]:
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    lines = [
        "import numpy as np",
        "import needle as ndl",
        "from needle.backend_ndarray import NDArray",
        f"x = np.random.default_rng({seed}).standard_normal({shape}).astype({dtype!r})",
        f"a = NDArray(x, device=ndl.device({str(dev)!r}), dtype={dtype!r})",
    ]
    return NDArray(x, device=dev, dtype=dtype), x.astype(np.float64), lines


def _check(
    got: NDArray,
    expected: np.ndarray,
    what: str,
    lines: list[str],
    expr: str,
    dtype: str,
    exact: bool = True,
) -> None:
    repro = "\n".join([*lines, f"print(({expr}).numpy())"])
    tol = {"rtol": 0.0, "atol": 0.0} if exact else {"dtype": dtype}
    detail = f"{what} -> shape {got.shape} strides {got.strides} offset {got._offset}, {dtype}"
    assert_close(got.numpy(), expected, what=f"NDArray {detail}", repro=repro, **tol)
    compact = got.compact()
    if not compact.is_compact():
        pytest.fail(f"NDArray {detail}: compact() returned a non-compact array", pytrace=False)
    assert_close(
        compact.numpy(),
        expected,
        what=f"NDArray {detail}, after compact()",
        repro=repro.replace(").numpy())", ").compact().numpy())"),
        **tol,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes, data=st.data(), seed=st.integers(0, 9999))
@SETTINGS
def test_permute_reshape(
    needle_device: Any, dtype: str, shape: tuple[int, ...], data: Any, seed: int
) -> None:
    a, x, lines = _make(needle_device, shape, seed, dtype)
    axes = tuple(data.draw(st.permutations(range(len(shape))), label="axes"))
    _check(
        a.permute(axes), x.transpose(axes), f"a.permute({axes})", lines, f"a.permute({axes})", dtype
    )
    flat = (int(np.prod(shape)),)
    _check(
        a.permute(axes).reshape(flat),
        x.transpose(axes).reshape(flat),
        f"a.permute({axes}).reshape({flat})",
        lines,
        f"a.permute({axes}).reshape({flat})",
        dtype,
    )


@st.composite
def _index(draw: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    idx = []
    for n in shape:
        if draw(st.booleans()):
            idx.append(draw(st.integers(-n, n - 1)))
        else:
            start = draw(st.one_of(st.none(), st.integers(-n, n)))
            stop = draw(st.one_of(st.none(), st.integers(-n, n)))
            idx.append(slice(start, stop, draw(st.one_of(st.none(), st.integers(1, 3)))))
    return tuple(idx)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes, data=st.data(), seed=st.integers(0, 9999))
@SETTINGS
def test_getitem(
    needle_device: Any, dtype: str, shape: tuple[int, ...], data: Any, seed: int
) -> None:
    """Ints (negative too), slices with steps, on a permuted view."""
    a, x, lines = _make(needle_device, shape, seed, dtype)
    axes = tuple(reversed(range(len(shape))))
    idx = data.draw(_index(tuple(x.transpose(axes).shape)), label="index")
    _check(
        a.permute(axes)[idx],
        x.transpose(axes)[idx],
        f"a.permute({axes})[{idx}]",
        lines,
        f"a.permute({axes})[{idx}]",
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes, data=st.data(), seed=st.integers(0, 9999))
@SETTINGS
def test_setitem(
    needle_device: Any, dtype: str, shape: tuple[int, ...], data: Any, seed: int
) -> None:
    """Write an array (broadcast from its last axis) and a scalar through a strided view."""
    a, x, lines = _make(needle_device, shape, seed, dtype)
    idx = tuple(
        slice(data.draw(st.integers(0, n - 1)), None, data.draw(st.integers(1, 2))) for n in shape
    )
    view_shape = x[idx].shape
    v = np.arange(view_shape[-1], dtype=dtype) + 0.5
    a[idx] = NDArray(v, device=needle_device, dtype=dtype)
    x[idx] = v
    lines = [
        *lines,
        f"a[{idx}] = NDArray(np.arange({view_shape[-1]}) + 0.5, device=a.device, dtype={dtype!r})",
    ]
    _check(a, x, f"a[{idx}] = array of shape {v.shape}", lines, "a", dtype)
    a[idx[:1]] = -3.0
    x[idx[:1]] = -3.0
    _check(a, x, f"a[{idx[:1]}] = -3.0", [*lines, f"a[{idx[:1]}] = -3.0"], "a", dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes, data=st.data(), seed=st.integers(0, 9999))
@SETTINGS
def test_broadcast_and_arithmetic(
    needle_device: Any, dtype: str, shape: tuple[int, ...], data: Any, seed: int
) -> None:
    a, x, lines = _make(needle_device, shape, seed, dtype)
    small = tuple(1 if data.draw(st.booleans()) else n for n in shape)
    b_np = (np.arange(int(np.prod(small)), dtype=np.float64).reshape(small) / 4).astype(dtype)
    b = NDArray(b_np, device=needle_device, dtype=dtype)
    lines = [
        *lines,
        f"b = NDArray(np.arange({int(np.prod(small))}.0).reshape({small}) / 4, "
        f"device=a.device, dtype={dtype!r})",
    ]
    _check(
        b.broadcast_to(shape),
        np.broadcast_to(b_np, shape),
        f"b.broadcast_to({shape})",
        lines,
        f"b.broadcast_to({shape})",
        dtype,
    )
    x64, b64 = x, b_np.astype(np.float64)
    cases = (
        ("a + b", a + b, x64 + b64),
        ("a * b - 1.5", a * b - 1.5, x64 * b64 - 1.5),
        ("b / (a.abs() + 1)", b / (a.abs() + 1), b64 / (np.abs(x64) + 1)),
    )
    for expr, got, want in cases:
        _check(got, want, expr, lines, expr, dtype, exact=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdims", [False, True])
@given(shape=shapes, data=st.data(), seed=st.integers(0, 9999))
@SETTINGS
def test_reductions(
    needle_device: Any, dtype: str, keepdims: bool, shape: tuple[int, ...], data: Any, seed: int
) -> None:
    a, x, lines = _make(needle_device, shape, seed, dtype)
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1)), label="axes"))) or None
    view, xv = a.permute(tuple(reversed(range(len(shape))))), x.transpose()
    pre = f"a.permute({tuple(reversed(range(len(shape))))})"
    for name in ("sum", "max"):
        expr = f"{pre}.{name}(axis={axes}, keepdims={keepdims})"
        got = getattr(view, name)(axis=axes, keepdims=keepdims)
        want = getattr(np, name)(xv, axis=axes, keepdims=keepdims)
        _check(got, want, expr, lines, expr, dtype, exact=name == "max")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("sa", "sb"),
    [((3, 4), (4, 5)), ((2, 3, 4), (2, 4, 2)), ((2, 1, 3, 4), (3, 4, 2)), ((4, 3), (3, 4))],
)
def test_matmul(needle_device: Any, dtype: str, sa: tuple[int, ...], sb: tuple[int, ...]) -> None:
    a, x, lines = _make(needle_device, sa, 1, dtype)
    b_np = np.random.default_rng(2).standard_normal(sb).astype(dtype)
    b = NDArray(b_np, device=needle_device, dtype=dtype)
    lines = [
        *lines,
        f"b = NDArray(np.random.default_rng(2).standard_normal({sb}), "
        f"device=a.device, dtype={dtype!r})",
    ]
    tol_dtype = dtype
    got, want = a @ b, x @ b_np.astype(np.float64)
    repro = "\n".join([*lines, "print((a @ b).numpy())"])
    rtol, atol = (1e-4, 1e-5) if tol_dtype == "float32" else (1e-9, 1e-12)
    assert_close(
        got.numpy(),
        want,
        rtol=rtol,
        atol=atol,
        repro=repro,
        what=f"NDArray matmul {sa} @ {sb}, {dtype}",
    )


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=shapes, data=st.data(), seed=st.integers(0, 9999))
@SETTINGS
def test_flip_pad(
    needle_device: Any, dtype: str, shape: tuple[int, ...], data: Any, seed: int
) -> None:
    a, x, lines = _make(needle_device, shape, seed, dtype)
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1)), label="axes")))
    _check(a.flip(axes), np.flip(x, axes), f"a.flip({axes})", lines, f"a.flip({axes})", dtype)
    pads = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape)
    _check(a.pad(pads), np.pad(x, pads), f"a.pad({pads})", lines, f"a.pad({pads})", dtype)


@pytest.mark.parametrize("src", DTYPES)
@pytest.mark.parametrize("dst", DTYPES)
def test_astype_to_numpy(needle_device: Any, src: str, dst: str) -> None:
    a, x, lines = _make(needle_device, (3, 4), 7, src)
    view = a.permute((1, 0))[1:, ::2]
    got = view.astype(dst)
    if got.dtype != dst:
        pytest.fail(f"NDArray astype({dst!r}) gave dtype {got.dtype}", pytrace=False)
    _check(
        got,
        x.T[1:, ::2].astype(dst),
        f"a.permute((1, 0))[1:, ::2].astype({dst!r})",
        lines,
        f"a.permute((1, 0))[1:, ::2].astype({dst!r})",
        dst,
    )
    back = NDArray(got.numpy(), device=needle_device, dtype=dst)
    _check(back, x.T[1:, ::2].astype(dst), "NDArray(view.numpy()) round trip", lines, "a", dst)
    moved = view.to("numpy" if needle_device.name != "numpy" else needle_device).to(needle_device)
    _check(moved, x.T[1:, ::2], "view.to(other device).to(device)", lines, "a", src)
