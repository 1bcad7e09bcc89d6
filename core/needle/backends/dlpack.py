"""A helper for backends whose memory NumPy can address: DLPack producers read on the host.

``dlpack_import`` kernels of CPU backends (the numpy reference, needle-cpp, a scaffolded
backend) all start the same way: let NumPy consume the producer's capsule, then make sure
the data has a dtype the backend holds and a layout a flat buffer can describe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["host_array"]


def host_array(
    kernel: str, obj: Any, copy: bool | None, dtypes: tuple[str, ...] = ("float32", "float64")
) -> tuple[np.ndarray, tuple[int, ...], int]:
    """``(array, element strides, span)`` of the DLPack producer ``obj`` on the host.

    The array shares the producer's memory (``np.from_dlpack`` keeps the producer alive)
    unless ``copy`` is True or sharing is impossible: a dtype outside ``dtypes`` (cast to
    float32, or float64 for wider types), negative or fractional-element strides, or an
    address not aligned to the element size; then it is a copy, or with ``copy=False`` a
    ``BufferError`` saying why. ``span`` is the number of elements from the first to the
    last one the array reaches (0 when empty).

    Raises:
        TypeError: ``obj`` has no ``__dlpack__``.
        BufferError: the producer cannot be read on the CPU, or sharing was required.
    """
    if not hasattr(obj, "__dlpack__"):
        raise TypeError(f"{kernel}: {type(obj).__name__} is not a DLPack producer (no __dlpack__)")
    try:
        arr = np.from_dlpack(obj, copy=copy)
    except (BufferError, RuntimeError, TypeError, ValueError) as exc:
        raise BufferError(f"{kernel}: the producer cannot be read on the CPU: {exc}") from None
    if arr.dtype.name not in dtypes:
        if copy is False:
            raise BufferError(
                f"{kernel}: {arr.dtype} data cannot be shared (the backend holds "
                f"{'/'.join(dtypes)}); pass copy=True"
            )
        arr = arr.astype(np.float64 if arr.dtype.itemsize > 4 else np.float32)
    item = arr.itemsize
    if arr.size and (any(s < 0 or s % item for s in arr.strides) or arr.ctypes.data % item):
        if copy is False:
            raise BufferError(f"{kernel}: strides {arr.strides} (bytes) cannot be shared")
        arr = np.ascontiguousarray(arr)
    strides = tuple(s // item for s in arr.strides)
    span = 0 if arr.size == 0 else 1 + sum((n - 1) * s for n, s in zip(arr.shape, strides))
    return arr, strides, span
