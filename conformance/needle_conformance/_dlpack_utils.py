"""Kernel-level checks of the optional DLPack kernels ``dlpack_export``/``dlpack_import``.

The values come from NumPy: an exported view must hold what ``as_strided`` over the
uploaded data holds, an imported producer what the producer holds. Sharing is checked
both ways (a write on one side is read on the other); lifetime by dropping the producer
and reading the imported buffer again.

A CPU backend (its producers report DLPack device type 1) is consumed and fed by NumPy; a
backend on another device (CUDA) is checked through its own kernels: its exported
producer is imported back, and ``to_numpy`` reads the result.
"""

from __future__ import annotations

import gc
from typing import Any

import numpy as np

from ._kernel_utils import download, upload

KDL_CPU = 1
# A (3, 2) view of a 24-element buffer, transposed (strides (1, 6)) at offset 7.
VIEW = ((3, 2), (1, 6), 7)


def strided(x: np.ndarray, shape: tuple, strides: tuple, offset: int) -> np.ndarray:
    """The NumPy view of flat ``x`` with element ``shape``/``strides``/``offset``."""
    item = x.itemsize
    return np.lib.stride_tricks.as_strided(
        x[offset:], shape=shape, strides=tuple(s * item for s in strides), writeable=False
    )


def read(k: Any, handle: Any, shape: tuple, strides: tuple, offset: int) -> np.ndarray:
    """A NumPy copy of the strided view of ``handle`` (the backend's ``to_numpy``)."""
    return np.asarray(k.to_numpy(handle, tuple(shape), tuple(strides), int(offset)))


def is_cpu(producer: Any) -> bool:
    """Whether a DLPack producer lives in CPU memory."""
    return int(producer.__dlpack_device__()[0]) == KDL_CPU


def _flag(ok: bool) -> float:
    return 1.0 if ok else 0.0


def check_export(k: Any, dtype: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """``(got, want, description)`` for ``dlpack_export`` on a transposed view."""
    shape, strides, offset = VIEW
    base = upload(k, x, dtype)
    producer = k.dlpack_export(base, shape, strides, offset)
    want_view = strided(x.astype(dtype), shape, strides, offset).astype(np.float64)
    if is_cpu(producer):
        seen = np.from_dlpack(producer)
        values = np.array(seen, dtype=np.float64)
        k.scalar_setitem(1, 99.0, base, (1,), (1,), offset)  # backend write, consumer reads
        backend_to_consumer = _flag(float(seen[0, 0]) == 99.0)
        consumer_to_backend = 1.0
        if seen.flags.writeable:  # consumer write, backend reads (flat index 7 + 2 + 6)
            seen[2, 1] = -5.0
            consumer_to_backend = _flag(float(download(k, base)[15]) == -5.0)
        del seen, producer
        gc.collect()
        alive = _flag(float(download(k, base)[offset]) == 99.0)
        how = "consumed by np.from_dlpack"
    else:
        handle, got_shape, got_strides, got_offset = k.dlpack_import(producer, False)
        values = read(k, handle, got_shape, got_strides, got_offset).astype(np.float64)
        k.scalar_setitem(1, 99.0, base, (1,), (1,), offset)
        first = read(k, handle, (1,), (1,), got_offset)
        backend_to_consumer = _flag(float(first[0]) == 99.0)
        consumer_to_backend = 1.0
        del producer, base
        gc.collect()  # the import keeps the exported memory alive
        alive = _flag(float(read(k, handle, (1,), (1,), got_offset)[0]) == 99.0)
        how = "imported back through dlpack_import(copy=False)"
    flags = np.array([backend_to_consumer, consumer_to_backend, alive])
    return (
        np.concatenate([values.reshape(-1), flags]),
        np.concatenate([want_view.reshape(-1), np.ones(3)]),
        f"view shape {shape} strides {strides} offset {offset} of 24 elements, {how}; then "
        "flags: a backend write seen by the consumer, a consumer write seen by the backend, "
        "the memory alive after the producer is dropped",
    )


def check_import(k: Any, dtype: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """``(got, want, description)`` for ``dlpack_import`` of a strided producer."""
    probe = (
        k.dlpack_export(upload(k, x[:1], dtype), (1,), (1,), 0)
        if hasattr(k, "dlpack_export")
        else None
    )
    if probe is None or is_cpu(probe):
        big = x.astype(dtype).reshape(4, 6).copy()
        producer = big.T[::2, 1:]  # (3, 3), strides (2, 6) elements: stepped and transposed
        want = producer.astype(np.float64).copy()
        handle, shape, strides, offset = k.dlpack_import(producer, False)
        values = read(k, handle, shape, strides, offset).astype(np.float64)
        producer[0, 0] = 77.0  # producer write, backend reads
        producer_to_backend = _flag(float(read(k, handle, (1,), (1,), offset)[0]) == 77.0)
        idx = offset + 2 * strides[0] + 1 * strides[1]  # element [2, 1]
        k.scalar_setitem(1, -3.0, handle, (1,), (1,), idx)  # backend write, producer reads
        backend_to_producer = _flag(float(producer[2, 1]) == -3.0)
        del producer, big
        gc.collect()  # the handle keeps the producer's memory alive
        after = read(k, handle, shape, strides, offset).astype(np.float64)
        expect_after = want.copy()
        expect_after[0, 0], expect_after[2, 1] = 77.0, -3.0
        alive = _flag(np.array_equal(after, expect_after.astype(dtype).astype(np.float64)))
        how = "a NumPy producer big.T[::2, 1:] of a (4, 6) array"
    else:
        base = upload(k, x, dtype)
        vshape, vstrides, voffset = VIEW
        producer = k.dlpack_export(base, vshape, vstrides, voffset)
        want = strided(x.astype(dtype), vshape, vstrides, voffset).astype(np.float64)
        handle, shape, strides, offset = k.dlpack_import(producer, False)
        values = read(k, handle, shape, strides, offset).astype(np.float64)
        k.scalar_setitem(1, 77.0, base, (1,), (1,), voffset)
        producer_to_backend = _flag(float(read(k, handle, (1,), (1,), offset)[0]) == 77.0)
        k.scalar_setitem(1, -3.0, handle, (1,), (1,), offset + 2 * strides[0] + strides[1])
        backend_to_producer = _flag(float(download(k, base)[voffset + 2 + 6]) == -3.0)
        del producer, base
        gc.collect()
        alive = _flag(float(read(k, handle, (1,), (1,), offset)[0]) == 77.0)
        how = "the backend's own exported view (shape (3, 2) strides (1, 6) offset 7)"
    flags = np.array([_flag(tuple(shape) == want.shape), producer_to_backend,
                      backend_to_producer, alive])  # fmt: skip
    return (
        np.concatenate([values.reshape(-1), flags]),
        np.concatenate([want.reshape(-1), np.ones(4)]),
        f"copy=False import of {how}; then flags: the shape kept, a producer write seen by "
        "the backend, a backend write seen by the producer, the memory alive after the "
        "producer is dropped",
    )
