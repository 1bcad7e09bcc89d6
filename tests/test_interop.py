"""Interop without copies (issue 17): DLPack and the NumPy protocols with NumPy, PyTorch
(CPU) and JAX (CPU), on the numpy and cpp backends, float32 and float64.

Sharing is checked by writes (a write on one side is read on the other) and, for JAX
(whose arrays are immutable), by data addresses. Expected values are NumPy's own view of
the same data. A library that is not installed skips its tests with the reason.
"""

from __future__ import annotations

import gc

import needle as ndl
import numpy as np
import pytest

DTYPES = ["float32", "float64"]


def _backends() -> list:
    out = [pytest.param("numpy")]
    try:
        usable = ndl.device("cpp").enabled()
    except Exception:  # not installed
        usable = False
    out.append(
        pytest.param("cpp", marks=pytest.mark.skipif(not usable, reason="needle-cpp not usable"))
    )
    return out


BACKENDS = _backends()

# name -> (needle view of a (4, 6) tensor, the same view in NumPy)
VIEWS = {
    "contiguous": (lambda t: t, lambda x: x),
    "transposed": (lambda t: ndl.transpose(t), lambda x: x.T),
    "stepped": (lambda t: t[::2, 1:], lambda x: x[::2, 1:]),
}


def _tensor(device: str, dtype: str, requires_grad: bool = False):
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(dtype)
    return ndl.Tensor(x, device=device, dtype=dtype, requires_grad=requires_grad), x


def _write(t, value: float) -> None:
    """needle writes element [0, 0] of ``t``'s data (its own scalar_setitem kernel)."""
    t.realize_cached_data()[0:1, 0:1] = value


# --- NumPy -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("view", list(VIEWS))
def test_numpy_from_dlpack_shares_a_needle_view(device, dtype, view):
    make, np_view = VIEWS[view]
    t, x = _tensor(device, dtype)
    v = make(t)
    a = np.from_dlpack(v)
    np.testing.assert_array_equal(a, np_view(x))
    assert a.dtype == np.dtype(dtype)
    _write(v, 42.0)
    assert a[0, 0] == 42.0  # needle -> NumPy
    a[-1, -1] = -8.0
    assert v.numpy()[-1, -1] == -8.0  # NumPy -> needle
    flat_index = np_view(np.arange(24).reshape(4, 6))[-1, -1]
    assert t.numpy().reshape(-1)[flat_index] == -8.0  # the tensor under the view too


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", BACKENDS)
def test_needle_from_dlpack_shares_a_numpy_view(device, dtype):
    base = np.arange(24, dtype=dtype).reshape(4, 6)
    src = base.T[::2, 1:]  # (3, 3), strided
    n = ndl.from_dlpack(src, device=device)
    assert isinstance(n, ndl.Tensor) and not n.requires_grad and n.op is None
    assert n.device == ndl.device(device) and n.dtype == dtype
    np.testing.assert_array_equal(n.numpy(), base.T[::2, 1:])
    src[1, 2] = 100.0
    assert n.numpy()[1, 2] == 100.0  # NumPy -> needle
    _write(n, -1.0)
    assert base[1, 0] == -1.0  # needle -> NumPy: src[0, 0] is base[1, 0]
    del src, base
    gc.collect()  # needle keeps the memory alive
    assert n.numpy()[0, 0] == -1.0 and n.numpy()[1, 2] == 100.0


@pytest.mark.parametrize("device", BACKENDS)
def test_asarray_of_a_tensor_that_requires_grad(device):
    t, x = _tensor(device, "float32", requires_grad=True)
    y = (t * 2.0).sum()  # a graph hangs off t
    copied = np.asarray(t)  # a copy of the data: no error, as t.detach().numpy()
    np.testing.assert_array_equal(copied, x)
    copied[0, 0] = 5.0
    assert t.numpy()[0, 0] == x[0, 0]
    as64 = np.asarray(t, dtype=np.float64)
    assert as64.dtype == np.float64 and np.array_equal(as64, x.astype(np.float64))
    shared = np.asarray(t, copy=False)  # the detached data itself
    shared[0, 0] = 5.0
    assert t.numpy()[0, 0] == 5.0
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(t, dtype=np.float64, copy=False)  # a cast cannot share
    y.backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.full((4, 6), 2.0, np.float32))


@pytest.mark.parametrize("device", BACKENDS)
def test_numpy_on_the_left_hands_over_to_needle(device):
    t, x = _tensor(device, "float64")
    assert ndl.Tensor.__array_ufunc__ is None  # NumPy's operators defer to the Tensor's
    out = np.float64(2.0) * t  # a NumPy scalar is a number
    assert isinstance(out, ndl.Tensor)
    np.testing.assert_array_equal(out.numpy(), 2.0 * x)
    with pytest.raises(TypeError, match="add"):  # an array is refused, not looped over
        x + t


def test_from_dlpack_refusals():
    with pytest.raises(TypeError, match="__dlpack__"):
        ndl.from_dlpack([1.0, 2.0])
    with pytest.raises(BufferError):
        ndl.from_dlpack(np.arange(3), device="numpy", copy=False)  # int64 cannot be shared
    got = ndl.from_dlpack(np.arange(3), device="numpy")  # copy=None: converted
    assert got.dtype == "float64" and got.numpy().tolist() == [0.0, 1.0, 2.0]
    src = np.arange(3.0)
    copied = ndl.from_dlpack(src, device="numpy", copy=True)
    src[0] = 9.0
    assert copied.numpy()[0] == 0.0


# --- PyTorch (CPU) ---------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("view", list(VIEWS))
def test_torch_from_dlpack_shares_a_needle_view(device, dtype, view):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    make, np_view = VIEWS[view]
    t, x = _tensor(device, dtype, requires_grad=True)
    v = make(t)
    tt = torch.from_dlpack(v)  # the detached data, as torch does with detach()
    assert not tt.requires_grad and tt.dtype == getattr(torch, dtype)
    want = np_view(x)
    assert tuple(tt.shape) == want.shape
    assert tuple(tt.stride()) == tuple(s // want.itemsize for s in want.strides)
    np.testing.assert_array_equal(tt.numpy(), want)
    tt[-1, -1] = 7.0
    assert v.numpy()[-1, -1] == 7.0  # torch -> needle
    _write(v, 42.0)
    assert float(tt[0, 0]) == 42.0  # needle -> torch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("view", ["contiguous", "transposed", "stepped"])
def test_needle_from_dlpack_shares_a_torch_view(device, dtype, view):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    base = torch.arange(24, dtype=getattr(torch, dtype)).reshape(4, 6)
    src = {"contiguous": base, "transposed": base.t(), "stepped": base[::2, 1:]}[view]
    want = {
        "contiguous": lambda b: b,
        "transposed": lambda b: b.T,
        "stepped": lambda b: b[::2, 1:],
    }[view](np.arange(24, dtype=dtype).reshape(4, 6))
    n = ndl.from_dlpack(src, device=device)
    assert not n.requires_grad and n.dtype == dtype
    np.testing.assert_array_equal(n.numpy(), want)
    src[-1, -1] = 300.0
    assert n.numpy()[-1, -1] == 300.0  # torch -> needle
    _write(n, -2.0)
    assert float(src[0, 0]) == -2.0  # needle -> torch
    del src, base
    gc.collect()
    assert n.numpy()[0, 0] == -2.0 and n.numpy()[-1, -1] == 300.0


@pytest.mark.parametrize("device", BACKENDS)
def test_torch_round_trip_is_the_same_memory(device):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    t, _ = _tensor(device, "float32")
    back = ndl.from_dlpack(torch.from_dlpack(t), device=device)
    assert np.asarray(back, copy=False).ctypes.data == np.asarray(t, copy=False).ctypes.data
    with pytest.raises((RuntimeError, BufferError)):  # torch's own rule: detach() first
        ndl.from_dlpack(torch.ones(2, requires_grad=True))


# --- JAX (CPU) -------------------------------------------------------------------------
@pytest.fixture
def jax_x64():
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", before)


def _jax_ptr(arr) -> int:
    return int(arr.unsafe_buffer_pointer())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("view", list(VIEWS))
def test_jax_from_dlpack_of_a_needle_view(jax_x64, device, dtype, view):
    jnp = jax_x64.numpy
    make, np_view = VIEWS[view]
    t, x = _tensor(device, dtype)
    v = make(t)
    try:
        j = jnp.from_dlpack(v)
    except Exception as exc:  # JAX takes row-major buffers and their transpositions only
        assert view == "stepped" and "strid" in str(exc), exc
        j = jnp.asarray(v.numpy())  # the documented copy (docs/interop.md)
    assert j.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(j), np_view(x))
    ptr = np.asarray(t, copy=False).ctypes.data
    # JAX shares a buffer aligned to 64 bytes (cpp's always are) and copies the others.
    if view == "contiguous" and (device == "cpp" or ptr % 64 == 0):
        assert _jax_ptr(j) == ptr
        _write(t, 42.0)
        assert float(j[0, 0]) == 42.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", BACKENDS)
def test_needle_from_dlpack_of_a_jax_array(jax_x64, device, dtype):
    jnp = jax_x64.numpy
    src = jnp.arange(24, dtype=dtype).reshape(4, 6)
    n = ndl.from_dlpack(src, device=device, copy=False)  # shared, or BufferError
    assert not n.requires_grad and n.dtype == dtype
    np.testing.assert_array_equal(n.numpy(), np.arange(24, dtype=dtype).reshape(4, 6))
    assert np.asarray(n, copy=False).ctypes.data == _jax_ptr(src)
    ptr = _jax_ptr(src)
    del src
    gc.collect()  # needle keeps JAX's buffer alive
    assert np.asarray(n, copy=False).ctypes.data == ptr
    np.testing.assert_array_equal(n.numpy(), np.arange(24, dtype=dtype).reshape(4, 6))
