"""NDArray: a strided view (shape, strides, offset) over a device's flat buffer.

Views (``permute``, ``reshape`` of compact arrays, ``broadcast_to``, ``as_strided``,
slicing) are stride arithmetic with no copy. Kernels want compact memory, so every
computing method calls :meth:`NDArray.compact` first, which copies only when needed.
Strides and offsets count elements, never bytes.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from .capture import host_check
from .device import Device, default_device
from .device import device as _device

DTYPES = ("float32", "float64")
_NP_DTYPES = {"float32": np.float32, "float64": np.float64}


def prod(xs: Sequence[int]) -> int:
    """Product of a sequence of ints (1 for an empty one)."""
    return math.prod(xs)


@functools.lru_cache(maxsize=4096)
def compact_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major strides (in elements) for ``shape`` (a tuple; cached: on every op's path)."""
    stride, out = 1, []
    for n in reversed(shape):
        out.append(stride)
        stride *= max(n, 1)
    return tuple(reversed(out))


def normalize_dtype(dtype: Any) -> str:
    """``"float32"`` for ``None``, ``np.float32``, ``"float32"``...; ``TypeError`` otherwise."""
    if dtype is None:
        return "float32"
    # the common case; np.dtype(...).name is slow. Only for str: np.dtype("float64") also
    # compares equal to "float64" but must become the name
    if dtype.__class__ is str and dtype in DTYPES:
        return dtype
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise TypeError(f"unknown dtype {dtype!r}") from None
    return name


@functools.lru_cache(maxsize=64)
def _dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, cached: NumPy computes it in a few µs, on every array made from
    host data."""
    return dtype.name


def normalize_axis(axis: int, ndim: int, op: str) -> int:
    """One axis as a non-negative int; ``TypeError``/``ValueError`` naming ``op`` otherwise."""
    if not isinstance(axis, numbers.Integral) or isinstance(axis, bool):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < max(ndim, 1):
        raise ValueError(f"{op}: axis {axis} is out of range for an array of {ndim} dims")
    return int(axis) % max(ndim, 1)


def normalize_axes(axes: Any, ndim: int, op: str) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints; ``None`` means all axes."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, numbers.Integral):
        axes = (axes,)
    out = tuple(sorted(normalize_axis(a, ndim, op) for a in axes))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axes}")
    return out


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with each reduced axis in ``axes`` kept as size 1 (``keepdims=True``)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy's broadcasting rule; ``ValueError`` naming the shapes when they clash."""
    ndim = max(len(s) for s in shapes)
    out = []
    for i in range(ndim):
        dims = {s[len(s) - ndim + i] for s in shapes if len(s) - ndim + i >= 0} - {1}
        if len(dims) > 1:
            raise ValueError(
                "shapes " + ", ".join(str(tuple(s)) for s in shapes) + " do not broadcast"
            )
        out.append(dims.pop() if dims else 1)
    return tuple(out)


class NDArray:
    """A strided n-dimensional array on one needle device.

    Build one with ``NDArray(data, device=None, dtype=None)`` from a NumPy array, a
    nested list, a scalar or another NDArray (copied to ``device``).
    """

    __slots__ = ("_device", "_dtype", "_handle", "_offset", "_shape", "_strides")
    _shape: tuple[int, ...]
    _strides: tuple[int, ...]
    _offset: int
    _device: Device
    _dtype: str
    _handle: Any

    def __init__(self, other: Any, device: Device | str | None = None, dtype: Any = None) -> None:
        if isinstance(other, NDArray):
            dev = other.device if device is None else _device(device)
            src = other if dtype is None else other._cast(normalize_dtype(dtype))
            if dev == src.device:
                self._init(src.compact() if src is not other else src.copy())
            else:
                self._init(NDArray(src.numpy(), device=dev))
            return
        dev = default_device() if device is None else _device(device)
        if dtype is None:  # a float array keeps its dtype where the backend has it
            dtype = getattr(other, "dtype", None)
            name = "" if dtype is None else _dtype_name(np.dtype(dtype))
            dtype = name if name in DTYPES and name in dev.dtypes else "float32"
        dtype = dev.check_dtype(normalize_dtype(dtype))
        try:
            data = np.asarray(other, dtype=_NP_DTYPES.get(dtype, dtype), order="C")
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"NDArray: cannot make a {dtype} array from {type(other).__name__}: {exc}"
            ) from None
        arr = NDArray.make(data.shape, device=dev, dtype=dtype)
        dev.from_numpy(data.reshape(-1), arr._handle)
        self._init(arr)

    def _init(self, other: NDArray) -> None:
        self._shape = other._shape
        self._strides = other._strides
        self._offset = other._offset
        self._device = other._device
        self._dtype = other._dtype
        self._handle = other._handle

    @staticmethod
    def make(
        shape: tuple[int, ...],
        strides: tuple[int, ...] | None = None,
        device: Device | None = None,
        handle: Any = None,
        offset: int = 0,
        dtype: str = "float32",
    ) -> NDArray:
        """A new NDArray over ``handle`` (or a fresh buffer) with the given layout."""
        arr = object.__new__(NDArray)
        arr._shape = shape = tuple(shape)
        arr._strides = compact_strides(shape) if strides is None else tuple(strides)
        arr._offset = offset
        dev = default_device() if device is None else device._plain
        arr._device = dev
        if handle is None:
            arr._dtype = dtype
            handle = dev.alloc(math.prod(shape), dtype)
        else:
            arr._dtype = handle.dtype
        arr._handle = handle
        return arr

    # --- properties ----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def strides(self) -> tuple[int, ...]:
        return self._strides

    @property
    def device(self) -> Device:
        return self._device

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        return prod(self._shape)

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d NDArray")
        return self._shape[0]

    def __repr__(self) -> str:
        return f"NDArray({self.numpy()!r}, device={self.device!r})"

    def __str__(self) -> str:
        return str(self.numpy())

    # --- memory --------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A NumPy copy of this array."""
        return self._device.to_numpy(self._handle, self._shape, self._strides, self._offset)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """``np.asarray(x)``: a NumPy copy, so every NumPy function takes an NDArray.

        ``copy=False`` (NumPy 2) shares the memory through DLPack where the backend can
        (``dlpack_export`` on a CPU device) and raises ``ValueError`` where it cannot.
        """
        if copy is False:
            try:
                out = np.from_dlpack(self._dlpack_producer(copy=False))
            except BufferError as exc:
                raise ValueError(f"np.asarray(copy=False): {exc}") from None
            if dtype is not None and np.dtype(dtype) != out.dtype:
                raise ValueError(f"np.asarray(copy=False): {out.dtype} data, {dtype} asked")
            return out
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    # --- DLPack (the Python array API standard's interchange protocol) -----------------
    def _dlpack_producer(self, copy: bool | None) -> Any:
        """A DLPack producer of this view: the backend's ``dlpack_export`` (shared memory)
        or, without it, a NumPy copy (refused when ``copy`` is False)."""
        if copy is not True and self._device.has_kernel("dlpack_export"):
            return self._device.dlpack_export(
                self._handle, self._shape, self._strides, self._offset
            )
        if copy is False:
            raise BufferError(
                f"needle backend {self._device.name!r} cannot share memory through DLPack "
                "(it has no dlpack_export kernel); pass copy=True or copy=None"
            )
        return self.numpy()

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: tuple[int, int] | None = None,
        dl_device: Any = None,
        copy: bool | None = None,
    ) -> Any:
        """A DLPack capsule of this array: shared memory where the backend can export it,
        else a copy (``copy=False`` then raises ``BufferError``). Strides and offset of a
        view travel in the capsule."""
        kwargs: dict[str, Any] = {"stream": stream}
        if max_version is not None:
            kwargs["max_version"] = max_version
        if dl_device is not None:
            kwargs["dl_device"] = dl_device
        if copy is not None:
            kwargs["copy"] = copy
        return self._dlpack_producer(copy).__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        """``(device_type, device_id)`` as DLPack counts them (CPU is 1, CUDA 2)."""
        return tuple(self._dlpack_producer(None).__dlpack_device__())  # type: ignore[return-value]

    @property
    def flat(self) -> Any:
        """A writable flat (row-major) view: ``x.flat[j] += eps`` changes ``x`` in place.

        As in the course, a compact array gives ``reshape((size,))`` (an NDArray over the
        same buffer); any other gives an indexer that reads and writes through the view.
        """
        if self.is_compact():
            return self.reshape((self.size,))
        return _FlatIndexer(self)

    def process_slice(self, sl: slice, dim: int) -> slice:
        """``sl`` with ``None`` and negative bounds resolved against axis ``dim``."""
        start, stop, step = sl.indices(self._shape[dim])
        if step <= 0:
            raise ValueError(f"process_slice: slice steps must be positive, got {step}")
        return slice(start, max(start, stop), step)

    def fill(self, value: float) -> None:
        """Set every element to ``value`` (in place, through the view)."""
        if self.is_compact() and self.size == self._handle.size:
            self._device.fill(self._handle, float(value))
        else:
            self[...] = value

    def is_compact(self) -> bool:
        """Whether the elements are contiguous in row-major order from ``offset``."""
        return self._strides == compact_strides(self._shape) and (
            self._offset == 0 or self._offset + math.prod(self._shape) <= self._handle.size
        )

    def compact(self) -> NDArray:
        """This array if compact, else a compact copy."""
        if self.is_compact():
            return self
        out = NDArray.make(self._shape, device=self._device, dtype=self._dtype)
        self._device.compact(self._handle, out._handle, self._shape, self._strides, self._offset)
        return out

    def _compact_handle(self) -> Any:
        """A handle whose first ``size`` elements are this array, row-major."""
        if self._offset == 0 and self._strides == compact_strides(self._shape):
            return self._handle
        arr = self.compact()
        if arr._offset == 0:
            return arr._handle
        out = NDArray.make(arr._shape, device=arr._device, dtype=arr._dtype)
        self._device.compact(arr._handle, out._handle, arr._shape, arr._strides, arr._offset)
        return out._handle

    def _exact_handle(self) -> Any:
        """A handle of exactly ``size`` elements holding this array, row-major.

        Kernels that size their work by an input handle (``softmax_last``,
        ``logsumexp_last``, ``ewise_where``, ``conv2d_nhwc``) need this rather than
        :meth:`_compact_handle`, whose buffer may be a larger parent (a leading slice).
        """
        handle = self._compact_handle()
        return handle if handle.size == self.size else self.copy()._handle

    def copy(self) -> NDArray:
        """A compact copy that shares no memory with this array."""
        out = NDArray.make(self._shape, device=self._device, dtype=self._dtype)
        self._device.compact(self._handle, out._handle, self._shape, self._strides, self._offset)
        return out

    def astype(self, dtype: Any) -> Any:
        """A copy converted to ``dtype`` (this array itself when the dtype matches).

        A NumPy dtype this backend does not store (``"int64"``, ``bool``...) gives a
        NumPy array of that dtype instead, as ``ndarray.astype`` would.
        """
        dtype = normalize_dtype(dtype)
        if dtype not in self._device.dtypes:
            return self.numpy().astype(dtype)
        return self._cast(dtype)

    def _cast(self, dtype: str) -> NDArray:
        """``astype`` within this backend's dtypes (``TypeError`` naming it otherwise)."""
        dtype = self._device.check_dtype(dtype)
        if dtype == self._dtype:
            return self
        out = NDArray.make(self._shape, device=self._device, dtype=dtype)
        self._device.astype(self._compact_handle(), out._handle)
        return out

    def to(self, device: Device | str) -> NDArray:
        """This array on ``device`` (itself when already there)."""
        dev = _device(device)
        return self if dev == self._device else NDArray(self.numpy(), device=dev, dtype=self._dtype)

    # --- views ---------------------------------------------------------------------
    def as_strided(self, shape: tuple[int, ...], strides: tuple[int, ...]) -> NDArray:
        """A view with new shape and strides over the same memory (bounds-checked)."""
        shape, strides = tuple(shape), tuple(strides)
        if len(shape) != len(strides):
            raise ValueError(f"as_strided: shape {shape} and strides {strides} differ in length")
        if any(s < 0 for s in shape) or any(s < 0 for s in strides):
            raise ValueError(f"as_strided: negative shape or stride {shape} {strides}")
        if 0 not in shape:
            last = self._offset + sum((n - 1) * s for n, s in zip(shape, strides))
            if last >= self._handle.size:
                raise ValueError(
                    f"as_strided: shape {shape} with strides {strides} reaches element {last} "
                    f"of a buffer of {self._handle.size}"
                )
        return NDArray.make(shape, strides, self._device, self._handle, self._offset)

    def reshape(self, new_shape: Sequence[int]) -> NDArray:
        """A view with ``new_shape`` (one entry may be -1); copies if not compact."""
        new_shape = tuple(new_shape)
        if new_shape.count(-1) > 1:
            raise ValueError(f"reshape: at most one -1 allowed in {new_shape}")
        if -1 in new_shape:
            known = prod([s for s in new_shape if s != -1])
            if known == 0 or self.size % known:
                raise ValueError(
                    f"reshape: cannot reshape array of shape {self._shape} into {new_shape}"
                )
            new_shape = tuple(self.size // known if s == -1 else s for s in new_shape)
        if prod(new_shape) != self.size or any(s < 0 for s in new_shape):
            raise ValueError(
                f"reshape: cannot reshape array of shape {self._shape} into {new_shape}"
            )
        arr = self.compact()
        return NDArray.make(new_shape, None, arr._device, arr._handle, arr._offset)

    def permute(self, new_axes: Sequence[int]) -> NDArray:
        """A view with axes reordered: ``new_axes[i]`` is the old axis that becomes axis i."""
        axes = tuple(new_axes)
        if sorted(normalize_axis(a, self.ndim, "permute") for a in axes) != list(range(self.ndim)):
            raise ValueError(
                f"permute: {axes} is not a permutation of the axes of shape {self._shape}"
            )
        axes = tuple(a % self.ndim for a in axes)
        return NDArray.make(
            tuple(self._shape[a] for a in axes),
            tuple(self._strides[a] for a in axes),
            self._device,
            self._handle,
            self._offset,
        )

    def broadcast_to(self, new_shape: Sequence[int]) -> NDArray:
        """A stride-0 view repeated to ``new_shape`` (NumPy broadcasting rules)."""
        new_shape = tuple(new_shape)
        pad = len(new_shape) - self.ndim
        if pad < 0:
            raise ValueError(f"broadcast_to: cannot broadcast shape {self._shape} to {new_shape}")
        strides = [0] * pad
        for i, (old, st) in enumerate(zip(self._shape, self._strides)):
            new = new_shape[pad + i]
            if old == new:
                strides.append(st)
            elif old == 1:
                strides.append(0)
            else:
                raise ValueError(
                    f"broadcast_to: cannot broadcast shape {self._shape} to {new_shape}"
                )
        return NDArray.make(new_shape, tuple(strides), self._device, self._handle, self._offset)

    def flip(self, axes: Any = None) -> NDArray:
        """A compact copy with the order of elements reversed along ``axes``.

        Kernels take non-negative strides only, so each flipped axis is reversed by
        copying its slabs one index at a time: ``sum(shape[a] for a in axes)`` copies.
        """
        result = self.copy()
        for ax in normalize_axes(axes, self.ndim, "flip"):
            n, lead = result._shape[ax], (slice(None),) * ax
            dst = NDArray.make(result._shape, device=self._device, dtype=self._dtype)
            for i in range(n):
                dst[(*lead, n - 1 - i)] = result[(*lead, i)]
            result = dst
        return result

    def pad(self, axes: Sequence[tuple[int, int]]) -> NDArray:
        """Zero padding: ``axes[i] = (before, after)`` for each axis."""
        pairs = tuple(tuple(a) for a in axes)
        if len(pairs) != self.ndim or any(len(a) != 2 or min(a) < 0 for a in pairs):
            raise ValueError(
                f"pad: need one (before, after) pair of non-negative ints per axis of "
                f"{self._shape}, got {pairs}"
            )
        new_shape = tuple(n + b + e for n, (b, e) in zip(self._shape, pairs))
        out = NDArray.make(new_shape, device=self._device, dtype=self._dtype)
        out.fill(0.0)
        out[tuple(slice(b, b + n) for n, (b, _) in zip(self._shape, pairs))] = self
        return out

    # --- indexing ------------------------------------------------------------------
    def _index_view(self, idxs: Any) -> tuple[NDArray, tuple[int, ...]]:
        """The strided view selected by ints, slices and ``...``; and the kept axes."""
        if not isinstance(idxs, tuple):
            idxs = (idxs,)
        if any(i is Ellipsis for i in idxs):
            at = idxs.index(Ellipsis)
            fill = self.ndim - (len(idxs) - 1)
            idxs = idxs[:at] + (slice(None),) * fill + idxs[at + 1 :]
        if len(idxs) > self.ndim:
            raise IndexError(f"too many indices ({len(idxs)}) for an array of shape {self._shape}")
        idxs = idxs + (slice(None),) * (self.ndim - len(idxs))
        shape, strides, offset, kept = [], [], self._offset, []
        for axis, (idx, n, st) in enumerate(zip(idxs, self._shape, self._strides)):
            if isinstance(idx, slice):
                start, stop, step = idx.indices(n)
                if step <= 0:
                    raise ValueError(
                        "NDArray indexing supports positive slice steps only; use flip"
                    )
                count = max(0, (stop - start + step - 1) // step)
                shape.append(count)
                strides.append(st * step)
                offset += start * st if count else 0
                kept.append(axis)
            elif isinstance(idx, numbers.Integral):
                idx = int(idx)
                if not -n <= idx < n:
                    raise IndexError(f"index {idx} is out of bounds for axis {axis} with size {n}")
                offset += (int(idx) % n) * st
            else:
                raise TypeError(f"NDArray indices must be ints or slices, got {type(idx).__name__}")
        return NDArray.make(
            tuple(shape), tuple(strides), self._device, self._handle, offset
        ), tuple(kept)

    def __getitem__(self, idxs: Any) -> NDArray:
        """A view (no copy). Integer indices drop their axis, as in NumPy."""
        return self._index_view(idxs)[0]

    def __setitem__(self, idxs: Any, other: Any) -> None:
        """Write an NDArray (broadcast to the view) or a scalar into the selected view."""
        view, _ = self._index_view(idxs)
        if isinstance(other, NDArray):
            self._same_device(other, "setitem")
            if other.shape != view.shape:
                other = other.broadcast_to(view.shape)
            src = other._cast(self._dtype)._compact_handle()
            self._device.ewise_setitem(src, self._handle, view._shape, view._strides, view._offset)
        else:
            self._device.scalar_setitem(
                view.size,
                _scalar(other, "setitem"),
                self._handle,
                view._shape,
                view._strides,
                view._offset,
            )

    # --- arithmetic ----------------------------------------------------------------
    def _same_device(self, other: NDArray, op: str) -> None:
        if other._device != self._device:
            raise ValueError(
                f"{op}: arrays are on different devices, {self._device} and {other._device}"
            )

    def _binary(self, other: Any, kernel: str, op: str) -> NDArray:
        dev = self._device
        if isinstance(other, NDArray):
            if other._device is not dev:
                self._same_device(other, op)
            a, b = self, other
            if a._dtype != b._dtype:
                a, b = _promote(a, b, op)
            if a._shape != b._shape:
                shape = broadcast_shapes(a._shape, b._shape)
                a, b = a.broadcast_to(shape), b.broadcast_to(shape)
            out = NDArray.make(a._shape, device=dev, dtype=a._dtype)
            compact = compact_strides(a._shape)  # both share the shape now
            ha = a._handle if a._offset == 0 and a._strides == compact else a._compact_handle()
            hb = b._handle if b._offset == 0 and b._strides == compact else b._compact_handle()
            getattr(dev, "ewise_" + kernel)(ha, hb, out._handle)
        else:
            out = NDArray.make(self._shape, device=dev, dtype=self._dtype)
            scalar = _scalar(other, op)
            getattr(dev, "scalar_" + kernel)(self._compact_handle(), scalar, out._handle)
        return out

    def ewise_or_scalar(self, other: Any, ewise_func: Any, scalar_func: Any) -> NDArray:
        """The course's helper: ``ewise_func`` (a kernel) with an NDArray, else ``scalar_func``."""
        out = NDArray.make(self._shape, device=self._device, dtype=self._dtype)
        if not isinstance(other, NDArray):
            scalar_func(self._compact_handle(), _scalar(other, "ewise_or_scalar"), out._handle)
        elif other.shape != self._shape or other.dtype != self._dtype:
            raise ValueError(f"ewise_or_scalar: {other.dtype}{other.shape} is not {self._shape}")
        else:
            ewise_func(self._compact_handle(), other._compact_handle(), out._handle)
        return out

    def reduce_view_out(self, axis: Any, keepdims: bool = False) -> tuple[NDArray, NDArray]:
        """The course's helper: a view with ``axis`` (one, or None for all) moved last,
        and an uninitialised output array for reducing it."""
        if axis is None:
            view = self.compact().reshape((1,) * (self.ndim - 1) + (self.size,))
            out_shape: tuple[int, ...] = (1,) * (self.ndim if keepdims else 1)
        else:
            if isinstance(axis, (tuple, list)):
                if len(axis) != 1:
                    raise ValueError(f"reduce_view_out: one axis at a time, got {axis}")
                axis = axis[0]
            axis = normalize_axis(axis, self.ndim, "reduce_view_out")
            view = self.permute([a for a in range(self.ndim) if a != axis] + [axis])
            out_shape = tuple(
                1 if i == axis else n for i, n in enumerate(self._shape) if keepdims or i != axis
            )
        return view, NDArray.make(out_shape, device=self._device, dtype=self._dtype)

    def _unary(self, kernel: str) -> NDArray:
        out = NDArray.make(self._shape, device=self._device, dtype=self._dtype)
        getattr(self._device, "ewise_" + kernel)(self._compact_handle(), out._handle)
        return out

    def __add__(self, other: Any) -> NDArray:
        return self._binary(other, "add", "add")

    __radd__ = __add__

    def __sub__(self, other: Any) -> NDArray:
        return self._binary(other, "sub", "sub")

    def __rsub__(self, other: Any) -> NDArray:
        return (-self) + other

    def __mul__(self, other: Any) -> NDArray:
        return self._binary(other, "mul", "mul")

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> NDArray:
        return self._binary(other, "div", "div")

    def __rtruediv__(self, other: Any) -> NDArray:
        return (self**-1.0) * other

    def __pow__(self, other: Any) -> NDArray:
        return self._binary(other, "power", "power")

    def __rpow__(self, other: Any) -> NDArray:
        base = full(self._shape, float(other), dtype=self._dtype, device=self._device)
        return base._binary(self, "power", "power")

    def __neg__(self) -> NDArray:
        return self._unary("neg")

    def maximum(self, other: Any) -> NDArray:
        return self._binary(other, "maximum", "maximum")

    def __eq__(self, other: Any) -> NDArray:  # type: ignore[override]
        return self._binary(other, "eq", "eq")

    def __ne__(self, other: Any) -> NDArray:  # type: ignore[override]
        return self._binary(other, "ne", "ne")

    def __lt__(self, other: Any) -> NDArray:
        return self._binary(other, "lt", "lt")

    def __le__(self, other: Any) -> NDArray:
        return self._binary(other, "le", "le")

    def __gt__(self, other: Any) -> NDArray:
        return self._binary(other, "gt", "gt")

    def __ge__(self, other: Any) -> NDArray:
        return self._binary(other, "ge", "ge")

    __hash__ = None  # type: ignore[assignment]

    def abs(self) -> NDArray:
        return self._unary("abs")

    __abs__ = abs

    def log(self) -> NDArray:
        return self._unary("log")

    def exp(self) -> NDArray:
        return self._unary("exp")

    def tanh(self) -> NDArray:
        return self._unary("tanh")

    def sqrt(self) -> NDArray:
        return self._unary("sqrt")

    def sin(self) -> NDArray:
        return self._unary("sin")

    def cos(self) -> NDArray:
        return self._unary("cos")

    # --- matmul --------------------------------------------------------------------
    def __matmul__(self, other: NDArray) -> NDArray:
        """2-D or batched matrix product; batch dimensions broadcast."""
        if not isinstance(other, NDArray):
            raise TypeError(f"matmul: expected an NDArray, got {type(other).__name__}")
        self._same_device(other, "matmul")
        if self._dtype != other._dtype:
            promoted = _promote(self, other, "matmul")
            return promoted[0] @ promoted[1]
        if self.ndim < 2 or other.ndim < 2:
            raise ValueError(
                f"matmul: need at least 2-D operands, got {self._shape} and {other._shape}"
            )
        (m, n), (n2, p) = self._shape[-2:], other._shape[-2:]
        if n != n2:
            raise ValueError(
                f"matmul: shapes {self._shape} and {other._shape} are not aligned ({n} != {n2})"
            )
        dev = self._device
        # A transposed view of a compact array (``a.T @ g``, ``g @ b.T``) goes to matmul_t
        # with a flag, uncopied: swapping its last two axes gives a compact array at 0.
        t_kernel = dev.has_kernel("matmul_t")

        def is_t(x: NDArray) -> bool:
            (*lead, r, c), (*st, sr, sc) = x._shape, x._strides
            return (
                x._offset == 0 and r > 1 and c > 1
                and (*st, sc, sr) == compact_strides((*lead, c, r))
            )  # fmt: skip

        if self.ndim == other.ndim == 2:
            out = NDArray.make((m, p), device=dev, dtype=self._dtype)
            ta, tb = t_kernel and is_t(self), t_kernel and is_t(other)
            if ta or tb:
                ha = self._handle if ta else self._compact_handle()
                hb = other._handle if tb else other._compact_handle()
                dev.matmul_t(ha, hb, out._handle, m, n, p, int(ta), int(tb))
                return out
            dev.matmul(self._compact_handle(), other._compact_handle(), out._handle, m, n, p)
            return out
        if other.ndim == 2 and 0 not in self._shape:
            # (..., m, n) @ (n, p), as a linear layer does: one 2-D product over the
            # flattened leading axes (a view when self is compact), not a batch of small
            # products against a weight broadcast (and copied) once per batch element.
            flat = self.reshape((self.size // n, n)) @ other
            return flat.reshape(self._shape[:-1] + (p,))
        batch_shape = broadcast_shapes(self._shape[:-2], other._shape[:-2])
        a = self.broadcast_to(batch_shape + (m, n))
        b = other.broadcast_to(batch_shape + (n, p))
        batch = prod(batch_shape)
        out = NDArray.make(batch_shape + (m, p), device=dev, dtype=self._dtype)
        ta = t_kernel and dev.has_kernel("batched_matmul_t") and is_t(a)
        tb = t_kernel and dev.has_kernel("batched_matmul_t") and is_t(b)
        if ta or tb:
            ha = a._handle if ta else a._compact_handle()
            hb = b._handle if tb else b._compact_handle()
            dev.batched_matmul_t(ha, hb, out._handle, batch, m, n, p, int(ta), int(tb))
            return out
        if dev.has_kernel("batched_matmul"):
            dev.batched_matmul(
                a._compact_handle(), b._compact_handle(), out._handle, batch, m, n, p
            )
            return out
        a, b = a.reshape((batch, m, n)), b.reshape((batch, n, p))
        flat = out.reshape((batch, m, p))
        for i in range(batch):
            flat[i] = a[i] @ b[i]
        return out

    # --- reductions ----------------------------------------------------------------
    def _reduce(self, axis: Any, keepdims: bool, kernel: str) -> NDArray:
        axes = normalize_axes(axis, self.ndim, kernel)
        kept = tuple(i for i in range(self.ndim) if i not in axes)
        view = self.permute(kept + axes) if axes else self
        out_shape = kept_shape(self._shape, axes)
        reduce_size = prod([self._shape[a] for a in axes])
        if kernel == "max" and reduce_size == 0:
            raise ValueError(f"max: zero-size reduction over axes {axes} of shape {self._shape}")
        out = NDArray.make(out_shape, device=self._device, dtype=self._dtype)
        mid = f"reduce_{kernel}_mid"
        if (  # one block of axes before the last: reduce in place, no permuting copy
            axes
            and axes[-1] < self.ndim - 1
            and axes[-1] - axes[0] == len(axes) - 1
            and self._device.has_kernel(mid)
        ):
            outer, inner = prod(self._shape[: axes[0]]), prod(self._shape[axes[-1] + 1 :])
            getattr(self._device, mid)(
                self._compact_handle(), out._handle, outer, reduce_size, inner
            )
        else:
            getattr(self._device, "reduce_" + kernel)(
                view._compact_handle(), out._handle, reduce_size
            )
        return out if keepdims else out.reshape(tuple(self._shape[i] for i in kept))

    def sum(self, axis: Any = None, keepdims: bool = False) -> NDArray:
        """Sum over ``axis`` (an int, a tuple of ints, or ``None`` for all)."""
        return self._reduce(axis, keepdims, "sum")

    def max(self, axis: Any = None, keepdims: bool = False) -> NDArray:
        """Maximum over ``axis`` (an int, a tuple of ints, or ``None`` for all)."""
        return self._reduce(axis, keepdims, "max")

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> NDArray:
        """Index of the first maximum along ``axis`` (over the flattened array if None)."""
        if self.size == 0:
            raise ValueError(f"argmax: empty array of shape {self._shape}")
        src = self.reshape((self.size,)) if axis is None else self
        ax = 0 if axis is None else normalize_axis(axis, self.ndim, "argmax")
        order = tuple(i for i in range(src.ndim) if i != ax) + (ax,)
        view = src.permute(order)
        out_shape = tuple(1 if i == ax else n for i, n in enumerate(src._shape))
        out = NDArray.make(out_shape, device=self._device, dtype=self._dtype)
        n = src._shape[ax]
        if self._device.has_kernel("reduce_argmax"):
            self._device.reduce_argmax(view._compact_handle(), out._handle, n)
        else:  # first index where the row equals its max: min over (index or n)
            rows = view.compact().reshape((out.size, n))
            hit = rows == rows.max(axis=1, keepdims=True)
            idx = (
                arange(n, device=self._device, dtype=self._dtype)
                .reshape((1, n))
                .broadcast_to(rows.shape)
            )
            cand = hit * idx + (1 - hit) * float(n)
            out = (-((-cand).max(axis=1))).reshape(out_shape)
        if axis is None:
            return out.reshape((1,) * self.ndim if keepdims else ())
        return (
            out if keepdims else out.reshape(tuple(n for i, n in enumerate(src._shape) if i != ax))
        )

    # --- fused kernels and their compositions -----------------------------------------
    # Each method below runs a backend's optional kernel when the device declares it and
    # a composition of required kernels otherwise, so ops never call kernels themselves.
    def _rows(self, kernel: str, out_shape: tuple[int, ...]) -> NDArray:
        """Run a fused ``*_last`` kernel over the compact rows of the last axis."""
        out = NDArray.make(out_shape, device=self._device, dtype=self._dtype)
        getattr(self._device, kernel)(self._exact_handle(), out._handle, self._shape[-1])
        return out

    def logsumexp(self, axis: Any = None, keepdims: bool = False) -> NDArray:
        """Numerically stable log(sum(exp(a))) over ``axis``; -inf over zero elements."""
        axes = normalize_axes(axis, self.ndim, "logsumexp")
        kept = kept_shape(self._shape, axes)
        if prod([self._shape[i] for i in axes]) == 0:
            out = full(kept, -math.inf, dtype=self._dtype, device=self._device)
        elif axes == (self.ndim - 1,) and self._device.has_kernel("logsumexp_last"):
            out = self._rows("logsumexp_last", kept)
        else:
            # Shift by the max, clamped to finite values so that all -inf (or +inf) rows
            # give -inf (or +inf) instead of inf - inf = NaN.
            big = float(np.finfo(self._dtype).max)
            m = self.max(axes, keepdims=True)
            shift = -((-m.maximum(-big)).maximum(-big))  # clamp(m, -big, big)
            shifted = self - shift.broadcast_to(self._shape)
            out = shifted.exp().sum(axes, keepdims=True).log() + shift
        if keepdims:
            return out
        return out.reshape(tuple(n for i, n in enumerate(self._shape) if i not in axes))

    def softmax(self) -> NDArray:
        """exp(a) / sum(exp(a)) over the last axis, max-shifted."""
        if self.ndim == 0:
            raise ValueError("softmax: needs at least 1 dim (reduces the last axis), got shape ()")
        if self.size == 0:
            return NDArray.make(self._shape, device=self._device, dtype=self._dtype)
        if self._device.has_kernel("softmax_last"):
            return self._rows("softmax_last", self._shape)
        last = (self.ndim - 1,)
        e = (self - self.max(last, keepdims=True).broadcast_to(self._shape)).exp()
        return e / e.sum(last, keepdims=True).broadcast_to(self._shape)

    def logsoftmax(self) -> NDArray:
        """a - logsumexp(a) over the last axis."""
        if self.ndim == 0:
            raise ValueError(
                "logsoftmax: needs at least 1 dim (reduces the last axis), got shape ()"
            )
        return self - self.logsumexp(self.ndim - 1, keepdims=True).broadcast_to(self._shape)

    def conv2d(self, weight: NDArray, stride: int = 1) -> NDArray:
        """Valid (unpadded) convolution of NHWC ``self`` with (KH, KW, C_in, C_out) weights.

        Runs ``conv2d_nhwc`` for square kernels where declared; otherwise im2col as one
        ``as_strided`` view of shape (N, H_out, W_out, KH, KW, C_in) times the weights.
        """
        if not isinstance(weight, NDArray):
            raise TypeError(f"conv2d: weight must be an NDArray, got {type(weight).__name__}")
        self._same_device(weight, "conv2d")
        if self.ndim != 4 or weight.ndim != 4:
            raise ValueError(
                f"conv2d: need NHWC input and (KH, KW, C_in, C_out) weights, got "
                f"{self._shape} and {weight.shape}"
            )
        if self._dtype != weight.dtype:
            raise TypeError(f"conv2d: dtypes differ, {self._dtype} and {weight.dtype}")
        n, h, w_, c_in = self._shape
        kh, kw, c_in_w, c_out = weight.shape
        if c_in != c_in_w:
            raise ValueError(
                f"conv2d: input has {c_in} channels, weights expect {c_in_w} "
                f"(shapes {self._shape} and {weight.shape})"
            )
        if not isinstance(stride, numbers.Integral) or stride < 1:
            raise ValueError(f"conv2d: stride must be a positive int, got {stride!r}")
        if kh > h or kw > w_:
            raise ValueError(f"conv2d: kernel {kh}x{kw} is larger than the image {h}x{w_}")
        h_out, w_out = (h - kh) // stride + 1, (w_ - kw) // stride + 1
        if kh == kw and self._device.has_kernel("conv2d_nhwc"):
            out = NDArray.make((n, h_out, w_out, c_out), device=self._device, dtype=self._dtype)
            self._device.conv2d_nhwc(
                self._exact_handle(), weight._exact_handle(), out._handle,
                n, h, w_, c_in, kh, c_out, stride,
            )  # fmt: skip
            return out
        cols = self.im2col(kh, kw, stride)
        out = cols @ weight.compact().reshape((kh * kw * c_in, c_out))
        return out.reshape((n, h_out, w_out, c_out))

    def im2col(self, kh: int, kw: int, stride: int = 1) -> NDArray:
        """The (N*H_out*W_out, KH*KW*C_in) patch matrix of an NHWC array (one copy)."""
        x = self.compact()
        n, h, w_, c_in = x._shape
        h_out, w_out = (h - kh) // stride + 1, (w_ - kw) // stride + 1
        sn, sh, sw, sc = x._strides
        cols = x.as_strided(
            (n, h_out, w_out, kh, kw, c_in), (sn, sh * stride, sw * stride, sh, sw, sc)
        ).compact()
        return cols.reshape((n * h_out * w_out, kh * kw * c_in))


class _FlatIndexer:
    """``x.flat`` of a non-compact NDArray: element ``j`` in row-major order, read and
    written through the view (so the next computation on ``x`` sees the write)."""

    def __init__(self, arr: NDArray) -> None:
        self._arr = arr

    def _index(self, j: Any) -> tuple[int, ...]:
        if not isinstance(j, numbers.Integral):
            raise TypeError(f"NDArray.flat: index must be an int, got {type(j).__name__}")
        n = self._arr.size
        j = int(j)
        if not -n <= j < n:
            raise IndexError(f"NDArray.flat: index {j} out of range for size {n}")
        return tuple(int(i) for i in np.unravel_index(int(j) % n, self._arr.shape))

    def __getitem__(self, j: Any) -> float:
        return float(self._arr[self._index(j)].numpy())

    def __setitem__(self, j: Any, value: Any) -> None:
        self._arr[self._index(j)] = _scalar(value, "flat")


def _scalar(x: Any, op: str) -> float:
    """A Python float from a number, a NumPy scalar, or a one-element array."""
    if x.__class__ is float:
        return x  # type: ignore[no-any-return]
    if isinstance(x, NDArray):
        if x.size != 1:
            raise ValueError(f"{op}: expected a scalar, got an NDArray of shape {x.shape}")
        return float(x.numpy().reshape(-1)[0])
    if isinstance(x, np.ndarray):
        if x.size != 1:
            raise ValueError(f"{op}: expected a scalar, got an array of shape {x.shape}")
        return float(x.reshape(-1)[0])
    try:
        return float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: expected a number or an NDArray, got {type(x).__name__}") from None


def _promote(a: NDArray, b: NDArray, op: str) -> tuple[NDArray, NDArray]:
    """``a`` and ``b`` in one dtype: float32 with float64 gives float64 (as NumPy)."""
    if {a._dtype, b._dtype} != {"float32", "float64"}:
        raise TypeError(f"{op}: dtypes differ, {a._dtype} and {b._dtype}")
    return a._cast("float64"), b._cast("float64")


# --- module-level functions (the course's array API) -------------------------------------
def array(a: Any, dtype: Any = "float32", device: Device | str | None = None) -> NDArray:
    """An NDArray copy of ``a`` on ``device``."""
    return NDArray(a, device=device, dtype=dtype)


def empty(
    shape: Sequence[int], dtype: Any = "float32", device: Device | str | None = None
) -> NDArray:
    """An uninitialised array."""
    dev = default_device() if device is None else _device(device)
    return NDArray.make(tuple(shape), device=dev, dtype=dev.check_dtype(normalize_dtype(dtype)))


def full(
    shape: Sequence[int],
    fill_value: float,
    dtype: Any = "float32",
    device: Device | str | None = None,
) -> NDArray:
    """An array filled with ``fill_value``."""
    arr = empty(shape, dtype, device)
    arr.fill(fill_value)
    return arr


def arange(n: int, dtype: Any = "float32", device: Device | str | None = None) -> NDArray:
    """``[0, 1, ..., n-1]`` as a 1-D array."""
    return NDArray(np.arange(n), device=device, dtype=dtype)


def broadcast_to(array: NDArray, new_shape: Sequence[int]) -> NDArray:
    return array.broadcast_to(new_shape)


def reshape(array: NDArray, new_shape: Sequence[int]) -> NDArray:
    return array.reshape(new_shape)


def maximum(a: NDArray, b: Any) -> NDArray:
    return a.maximum(b)


def log(a: NDArray) -> NDArray:
    return a.log()


def exp(a: NDArray) -> NDArray:
    return a.exp()


def tanh(a: NDArray) -> NDArray:
    return a.tanh()


def negative(a: NDArray) -> NDArray:
    return -a


def flip(a: NDArray, axes: Any = None) -> NDArray:
    return a.flip(axes)


def summation(a: NDArray, axis: Any = None, keepdims: bool = False) -> NDArray:
    return a.sum(axis=axis, keepdims=keepdims)


def stack(arrays: Sequence[NDArray], axis: int = 0) -> NDArray:
    """Join same-shape arrays along a new axis."""
    if not arrays:
        raise ValueError("stack: need at least one array")
    shape = arrays[0].shape
    for a in arrays:
        if a.shape != shape:
            raise ValueError(f"stack: shapes differ, {shape} and {a.shape}")
    axis = normalize_axis(axis, len(shape) + 1, "stack")
    out = empty(shape[:axis] + (len(arrays),) + shape[axis:], arrays[0].dtype, arrays[0].device)
    for i, a in enumerate(arrays):
        out[(slice(None),) * axis + (i,)] = a
    return out


def concatenate(arrays: Sequence[NDArray], axis: int = 0) -> NDArray:
    """Join arrays along an existing axis."""
    if not arrays:
        raise ValueError("concatenate: need at least one array")
    first = arrays[0]
    axis = normalize_axis(axis, first.ndim, "concatenate")
    for a in arrays:
        if (
            a.ndim != first.ndim
            or a.shape[:axis] + a.shape[axis + 1 :] != first.shape[:axis] + first.shape[axis + 1 :]
        ):
            raise ValueError(
                f"concatenate: shapes {first.shape} and {a.shape} differ off axis {axis}"
            )
    total = sum(a.shape[axis] for a in arrays)
    out = empty(first.shape[:axis] + (total,) + first.shape[axis + 1 :], first.dtype, first.device)
    at = 0
    for a in arrays:
        out[(slice(None),) * axis + (slice(at, at + a.shape[axis]),)] = a
        at += a.shape[axis]
    return out


def where(cond: NDArray, a: NDArray, b: NDArray) -> NDArray:
    """``a`` where ``cond != 0`` else ``b``, broadcasting all three (``ewise_where`` or a
    composition of required kernels)."""
    for name, x in (("cond", cond), ("a", a), ("b", b)):
        if not isinstance(x, NDArray):
            raise TypeError(f"where: {name} must be an NDArray, got {type(x).__name__}")
    a._same_device(cond, "where")
    a._same_device(b, "where")
    if not cond.dtype == a.dtype == b.dtype:
        raise TypeError(f"where: dtypes differ, {cond.dtype}, {a.dtype} and {b.dtype}")
    shape = broadcast_shapes(cond.shape, a.shape, b.shape)
    cond, a, b = (x.broadcast_to(shape) if x.shape != shape else x for x in (cond, a, b))
    dev = a.device
    if dev.has_kernel("ewise_where"):
        out = NDArray.make(shape, device=dev, dtype=a.dtype)
        dev.ewise_where(cond._exact_handle(), a._exact_handle(), b._exact_handle(), out._handle)
        return out
    # Caveat of the composition: an inf or NaN in the branch not taken turns into NaN
    # (inf * 0), where the fused kernel would not see it.
    mask = cond != 0.0
    return a * mask + b * (1.0 - mask)


def one_hot(n: int, indices: Any, dtype: Any = None, device: Device | str | None = None) -> NDArray:
    """Rows of the ``n``-by-``n`` identity picked by integer ``indices`` (any shape).

    The result has shape ``indices.shape + (n,)`` and is built at its own size, never
    ``n * n``. An NDArray of indices stays on its device (compared with ``0..n-1``
    there, in its dtype unless ``dtype`` says otherwise); anything else (a NumPy array,
    a list, an object with ``.numpy()``) is built on the host and copied to ``device``.
    """
    if not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"one_hot: the number of classes must be a non-negative int, got {n!r}")
    if isinstance(indices, NDArray):
        x = indices
        with host_check():  # a range check: a replayed step skips it
            bad = x.size and (float(x.max().numpy()) >= n or float((-x).max().numpy()) > 0)
        if bad:
            raise IndexError(f"one_hot: indices must lie in [0, {n}) (shape {x.shape})")
        ks = arange(n, dtype=x.dtype, device=x.device).reshape((1,) * x.ndim + (n,))
        col = x.reshape((*x.shape, 1)).broadcast_to((*x.shape, n))
        out = col == ks.broadcast_to((*x.shape, n))
        return out if dtype is None else out.astype(dtype)
    idx = np.asarray(indices.numpy() if hasattr(indices, "numpy") else indices)
    if idx.size and not np.all(np.mod(idx, 1) == 0):
        raise ValueError("one_hot: indices must be whole numbers")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"one_hot: indices must lie in [0, {n}), got {idx.min()}..{idx.max()}")
    dtype = normalize_dtype(dtype)
    out_np = np.zeros((idx.size, n), dtype=_NP_DTYPES.get(dtype, np.float32))
    out_np[np.arange(idx.size), idx.reshape(-1)] = 1.0
    return NDArray(out_np.reshape((*idx.shape, n)), device=device, dtype=dtype)


def from_dlpack(obj: Any, device: Device | str | None = None, copy: bool | None = None) -> NDArray:
    """An NDArray of the DLPack producer ``obj`` (a PyTorch, NumPy, CuPy or JAX array...).

    The memory is shared where ``device``'s backend has the ``dlpack_import`` kernel and
    the producer's device, dtype and layout allow; otherwise (or with ``copy=True``) the
    data is copied, and ``copy=False`` raises ``BufferError`` instead. Without
    ``device``: a CPU producer lands on the default device when that is a CPU backend
    (else ``cpu()``), a CUDA producer on ``cuda:<its index>``.
    """
    if not hasattr(obj, "__dlpack__"):
        raise TypeError(f"from_dlpack: {type(obj).__name__} does not implement __dlpack__")
    if device is None:
        kind, index = obj.__dlpack_device__()
        if int(kind) == 2:  # kDLCUDA
            dev = _device(f"cuda:{int(index)}")
        else:
            dev = default_device()
            if dev.name == "cuda":
                dev = _device("cpp") if _device("cpp").enabled() else _device("numpy")
    else:
        dev = _device(device)
    if copy is not True and dev.has_kernel("dlpack_import"):
        handle, shape, strides, offset = dev.dlpack_import(obj, copy)
        return NDArray.make(tuple(shape), tuple(strides), dev, handle, int(offset))
    if copy is False:
        raise BufferError(
            f"from_dlpack: needle backend {dev.name!r} cannot share memory through DLPack "
            "(no dlpack_import kernel); pass copy=True or copy=None"
        )
    data = np.from_dlpack(obj, copy=True)
    dtype = data.dtype.name if data.dtype.name in DTYPES else "float32"
    return NDArray(data, device=dev, dtype=dtype)
