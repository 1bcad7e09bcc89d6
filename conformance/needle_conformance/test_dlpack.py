"""Area ``dlpack``: DLPack interchange through NDArray (``__dlpack__``, ``from_dlpack``).

Round trips of contiguous and strided views (leading slice, stepped, transposed,
broadcast) with their values checked against the same view taken by NumPy; sharing (a
write on one side read on the other) where the backend declares ``dlpack_export`` /
``dlpack_import``; lifetime (the producer dropped while the consumer lives, the needle
array dropped while a capsule or consumer lives); ``copy=False`` refusals.

A CPU backend (its arrays report DLPack device type 1) is consumed and fed by NumPy; a
backend on another device is checked against itself (its export imported back).
A backend without the kernels still passes the value and lifetime tests (DLPack then
hands over copies) and is checked to refuse ``copy=False``.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np
import pytest
from needle.backend_ndarray import NDArray, from_dlpack

from . import _state
from .assertions import assert_close

pytestmark = pytest.mark.dlpack
DTYPES = _state.dtypes()

# name -> (NDArray view, the same view in NumPy, whether it may be written through)
VIEWS = {
    "contiguous": (lambda a: a, lambda x: x, True),
    "leading_slice": (lambda a: a[1:3], lambda x: x[1:3], True),
    "stepped": (lambda a: a[::2, 1::3], lambda x: x[::2, 1::3], True),
    "transposed": (lambda a: a.permute((1, 0)), lambda x: x.T, True),
    "broadcast": (
        lambda a: a[1:2].broadcast_to((3, 6)),
        lambda x: np.broadcast_to(x[1:2], (3, 6)),
        False,
    ),
}


def _source(dev: Any, dtype: str, seed: int = 0) -> tuple[NDArray, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal((4, 6)).astype(dtype)
    return NDArray(x, device=dev, dtype=dtype), x


def _is_cpu(a: NDArray) -> bool:
    return int(a.__dlpack_device__()[0]) == 1


def _shares(dev: Any) -> tuple[bool, bool]:
    return dev.has_kernel("dlpack_export"), dev.has_kernel("dlpack_import")


class _Capsule:
    """A producer that hands out one capsule taken earlier (to outlive its source)."""

    def __init__(self, capsule: Any, device: tuple[int, int]) -> None:
        self.capsule, self.device = capsule, device

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", list(VIEWS))
def test_export_view(needle_device: Any, view: str, dtype: str) -> None:
    """A view's values (strides and offset) travel through the capsule; with
    ``dlpack_export``, a write by the consumer is seen by needle and the other way."""
    make, np_view, writable = VIEWS[view]
    a, x = _source(needle_device, dtype)
    v, want = make(a), np_view(x)
    export, _ = _shares(needle_device)
    what = f"{view} view shape {v.shape} strides {v.strides} exported, {dtype}"
    if not _is_cpu(a):  # consumed by needle itself
        got = from_dlpack(v, device=needle_device)
        assert_close(got.numpy(), want, rtol=0, atol=0, what=what)
        return
    got = np.from_dlpack(v)
    assert got.shape == want.shape, what
    assert_close(np.array(got), want, rtol=0, atol=0, what=what)
    if not (export and writable):
        return
    if got.flags.writeable:
        got[-1, -1] = 123.0  # the consumer writes, needle reads
        assert float(v.numpy()[-1, -1]) == 123.0, f"{what}: a consumer write is not seen"
    w = np.from_dlpack(v)
    v[0:1, 0:1] = -7.0  # needle writes, the consumer reads
    assert float(w[0, 0]) == -7.0, f"{what}: a needle write is not seen by the consumer"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("view", list(VIEWS))
def test_import_view(needle_device: Any, view: str, dtype: str) -> None:
    """``from_dlpack`` of a strided producer keeps its values; with ``dlpack_import`` the
    memory is shared both ways and outlives the dropped producer."""
    make, np_view, writable = VIEWS[view]
    _, importing = _shares(needle_device)
    probe, x = _source(needle_device, dtype)
    if _is_cpu(probe):
        producer: Any = np_view(x.copy())
    else:
        producer = make(probe)
    want = np_view(x).copy()
    what = f"{view} producer shape {want.shape} imported, {dtype}"
    b = from_dlpack(producer, device=needle_device)
    assert b.shape == want.shape and b.dtype == dtype, what
    assert_close(b.numpy(), want, rtol=0, atol=0, what=what)
    if importing and writable:
        b[0:1, 0:1] = 55.0  # needle writes, the producer reads
        seen = np.asarray(producer) if _is_cpu(probe) else producer.numpy()
        assert float(seen[0, 0]) == 55.0, f"{what}: a needle write is not seen by the producer"
        want[0, 0] = 55.0
    del producer, probe
    gc.collect()
    assert_close(b.numpy(), want, rtol=0, atol=0, what=f"{what}, after the producer was dropped")


@pytest.mark.parametrize("dtype", DTYPES)
def test_needle_array_dropped_while_a_capsule_lives(needle_device: Any, dtype: str) -> None:
    a, x = _source(needle_device, dtype, seed=1)
    v = a[1:, ::2]
    capsule, device = v.__dlpack__(), v.__dlpack_device__()
    del a, v
    gc.collect()
    holder = _Capsule(capsule, device)
    got = np.from_dlpack(holder) if int(device[0]) == 1 else from_dlpack(holder).numpy()
    assert_close(
        np.array(got), x[1:, ::2], rtol=0, atol=0, what=f"capsule of a dropped array, {dtype}"
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_needle_array_dropped_while_a_consumer_lives(needle_device: Any, dtype: str) -> None:
    a, x = _source(needle_device, dtype, seed=2)
    consumer = np.from_dlpack(a) if _is_cpu(a) else from_dlpack(a, device=needle_device)
    del a
    gc.collect()
    got = consumer if isinstance(consumer, np.ndarray) else consumer.numpy()
    assert_close(np.array(got), x, rtol=0, atol=0, what=f"consumer of a dropped array, {dtype}")


def test_copy_false_refusals(needle_device: Any) -> None:
    """``copy=False`` shares or raises ``BufferError``; ``copy=None`` then copies."""
    export, importing = _shares(needle_device)
    a, x = _source(needle_device, "float32")
    if not export:
        with pytest.raises(BufferError, match="copy"):
            a.__dlpack__(copy=False)
        if _is_cpu(a):
            with pytest.raises(ValueError):
                np.asarray(a, copy=False)
    elif _is_cpu(a):
        shared = np.asarray(a, copy=False)
        assert_close(shared, x, rtol=0, atol=0, what="np.asarray(copy=False)")
    if not _is_cpu(a):
        return
    ints = np.arange(6).reshape(2, 3)
    with pytest.raises(BufferError, match=r"int64|copy"):
        from_dlpack(ints, device=needle_device, copy=False)
    got = from_dlpack(ints, device=needle_device)  # copy=None: converted
    assert_close(got.numpy(), ints.astype(np.float64), rtol=0, atol=0, what="int64 producer copied")
    rev = np.arange(5.0)[::-1]
    try:
        rev.__dlpack__()
    except BufferError:
        pytest.skip("this NumPy does not export negative strides")
    with pytest.raises(BufferError):
        from_dlpack(rev, device=needle_device, copy=False)
    got = from_dlpack(rev, device=needle_device)
    assert_close(got.numpy(), rev, rtol=0, atol=0, what="negative-stride producer copied")
    if importing:
        src = np.arange(4.0)
        copied = from_dlpack(src, device=needle_device, copy=True)
        src[0] = 9.0  # a copy does not see it
        assert float(copied.numpy()[0]) == 0.0, "from_dlpack(copy=True) shares memory"
