"""needle.backend_ndarray: the strided NDArray over a backend's flat buffers.

Course-compatible names: ``nd.array``, ``nd.empty``, ``nd.full``, ``nd.NDArray``,
``nd.cpu()``, ``nd.cuda()``, ``nd.cpu_numpy()``.
"""

from __future__ import annotations

from .device import Device, all_devices, cpu, cpu_numpy, cuda, default_device, device
from .ndarray import (
    DTYPES,
    NDArray,
    arange,
    array,
    broadcast_shapes,
    broadcast_to,
    compact_strides,
    concatenate,
    empty,
    exp,
    flip,
    from_dlpack,
    full,
    kept_shape,
    log,
    maximum,
    negative,
    normalize_axes,
    normalize_axis,
    normalize_dtype,
    one_hot,
    prod,
    reshape,
    stack,
    summation,
    tanh,
    where,
)

BackendDevice = Device  # the course's name for a device
sum = summation  # the course's nd.sum(a, axis, keepdims)

__all__ = [
    "DTYPES",
    "BackendDevice",
    "Device",
    "NDArray",
    "all_devices",
    "arange",
    "array",
    "broadcast_shapes",
    "broadcast_to",
    "compact_strides",
    "concatenate",
    "cpu",
    "cpu_numpy",
    "cuda",
    "default_device",
    "device",
    "empty",
    "exp",
    "flip",
    "from_dlpack",
    "full",
    "kept_shape",
    "log",
    "maximum",
    "negative",
    "normalize_axes",
    "normalize_axis",
    "normalize_dtype",
    "one_hot",
    "prod",
    "reshape",
    "stack",
    "sum",
    "summation",
    "tanh",
    "where",
]
