"""DLPack export and import for the C++ backend, through NumPy (CPU memory).

Export: a NumPy array over the buffer's memory (it holds the buffer, so the memory lives
as long as the array, a view of it, or a DLPack capsule taken from it) viewed with the
requested strides; NumPy arrays are DLPack producers. Import: NumPy consumes the
capsule (``np.from_dlpack`` keeps the producer alive) and ``_core.wrap_external`` makes a
buffer over that memory which holds the NumPy array until the buffer dies.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from needle.backends.dlpack import host_array

from . import _core

_NP = {"float32": np.float32, "float64": np.float64}


class _Memory:
    """``__array_interface__`` over a whole buffer; holds the buffer alive."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.__array_interface__ = {
            "data": (int(handle.ptr), False),
            "shape": (int(handle.size),),
            "typestr": np.dtype(_NP[handle.dtype]).str,
            "version": 3,
        }


def dlpack_export(a: Any, shape: Any, strides: Any, offset: int) -> np.ndarray:
    """A NumPy view (a DLPack producer) of the strided region of ``a``, sharing memory."""
    shape, strides, offset = tuple(shape), tuple(strides), int(offset)
    if not isinstance(a, _core.Array):
        raise TypeError(f"dlpack_export: expected a cpp buffer, got {type(a).__name__}")
    if len(shape) != len(strides) or any(s < 0 for s in (*shape, *strides)) or offset < 0:
        raise ValueError(f"dlpack_export: bad view shape {shape} strides {strides} offset {offset}")
    if 0 in shape:
        return np.empty(shape, dtype=_NP[a.dtype])
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
    if last >= a.size:
        raise IndexError(
            f"dlpack_export: view (shape {shape}, strides {strides}, offset {offset}) reaches "
            f"element {last} of a buffer of {a.size}"
        )
    flat = np.asarray(_Memory(a))
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(
        flat[offset:], shape=shape, strides=tuple(s * item for s in strides), writeable=True
    )


def dlpack_import(obj: Any, copy: bool | None = None) -> tuple[Any, tuple, tuple, int]:
    """``(buffer, shape, strides, offset)`` over the producer's memory (see the contract)."""
    arr, strides, span = host_array("dlpack_import", obj, copy)
    handle = _core.wrap_external(arr.ctypes.data if span else 0, span, arr.dtype.name, arr)
    return handle, tuple(arr.shape), strides, 0


def install(core: Any) -> Any:
    """Add the DLPack kernels to the compiled module's kernel table."""
    core.dlpack_export = dlpack_export
    core.dlpack_import = dlpack_import
    return core
