"""``Device`` objects and the rules for choosing one (``NEEDLE_BACKEND``).

A device is one backend's kernel table at one index. It lives in the array layer, above
the plugin host: the host (``needle.backends``) discovers and validates backends and
knows nothing of arrays; a ``Device`` asks it for a backend's kernels and builds arrays.
"""

from __future__ import annotations

import os
from typing import Any

from ..backends import REGISTRY, Backend, BackendError, on_unregister

_DEVICES: dict[tuple[str, int], Device] = {}


class Device:
    """One device of one backend, e.g. ``device("cpp")`` or ``device("cuda:1")``.

    Devices compare by backend name and index. Kernel attributes (``ewise_add``,
    ``compact``...) are looked up on the backend's kernel table, which is loaded on
    first use, so a ``Device`` for an unusable backend can exist and report
    ``enabled() == False``.
    """

    def __init__(self, name: str, index: int = 0, label: str | None = None) -> None:
        self.name = name
        self.index = index
        # the course's name ("cpu()", "cuda()") for the devices cpu() and cuda() return;
        # arrays are made on the plain device, so errors name the backend
        self._label = label
        self._plain = self

    # --- identity ----------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if self is other:  # devices are cached, so this is the common case
            return True
        return isinstance(other, Device) and (self.name, self.index) == (other.name, other.index)

    def __hash__(self) -> int:
        return hash((self.name, self.index))

    def __repr__(self) -> str:
        return (
            f"device({self.name!r})" if self.index == 0 else f"device('{self.name}:{self.index}')"
        )

    def __str__(self) -> str:
        if self._label is not None:
            return self._label
        return self.name if self.index == 0 else f"{self.name}:{self.index}"

    # --- the backend behind it ---------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The registered :class:`Backend` (raises when it is not installed)."""
        return REGISTRY.loaded(self.name) or REGISTRY.get(self.name)

    def enabled(self) -> bool:
        """Whether this device can run here (installed, usable, index in range)."""
        try:
            status = self.backend.status()
        except BackendError:
            return False
        return status.usable and self.index < status.device_count

    @property
    def kernels(self) -> Any:
        """The backend's validated kernel table for this device."""
        return self.backend.kernels(self.index)

    def has_kernel(self, name: str) -> bool:
        """Whether the backend provides optional kernel ``name``."""
        return self.backend.has_kernel(name)

    @property
    def dtypes(self) -> tuple[str, ...]:
        return self.backend.info.dtypes

    def check_dtype(self, dtype: str) -> str:
        """Return ``dtype`` if this backend supports it, else raise ``TypeError``."""
        if dtype not in self.backend.info.dtypes:
            raise TypeError(
                f"needle backend {self.name!r} does not support dtype {dtype!r}; "
                f"supported: {', '.join(self.backend.info.dtypes)}"
            )
        return dtype

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set on the instance: kernels. Cache them so the
        # next lookup is a plain attribute read (this is on every op's hot path).
        if name.startswith("_"):
            raise AttributeError(name)
        fn = getattr(self.kernels, name)
        setattr(self, name, fn)
        return fn

    # --- course-compatible constructors -------------------------------------------
    def empty(self, shape: tuple[int, ...], dtype: str = "float32") -> Any:
        return _nd.empty(shape, dtype, self)

    def full(self, shape: tuple[int, ...], fill_value: float, dtype: str = "float32") -> Any:
        return _nd.full(shape, fill_value, dtype, self)

    def rand(self, *shape: int, dtype: str = "float32") -> Any:
        """Uniform [0, 1) samples from needle's generator (see ``needle.random``)."""
        return _nd.NDArray(_random.rand(*shape), device=self, dtype=dtype)

    def randn(self, *shape: int, dtype: str = "float32") -> Any:
        """Standard normal samples from needle's generator (see ``needle.random``)."""
        return _nd.NDArray(_random.randn(*shape), device=self, dtype=dtype)

    def randb(self, *shape: int, p: float = 0.5, dtype: str = "float32") -> Any:
        """1.0 with probability ``p``, else 0.0: ``needle.random.randb``'s values (NumPy's
        stream), drawn on the device by the backend's ``bernoulli_mt19937`` when it has
        one (see :meth:`bernoulli_into`), on the host otherwise."""
        if (
            dtype in ("float32", "float64")
            and dtype in self.dtypes
            and self.has_kernel("bernoulli_mt19937")
            and not _random.observing()
            and all(type(s) is int and s >= 0 for s in shape)
        ):
            out = _nd.NDArray.make(shape, device=self, dtype=dtype)
            if self.bernoulli_into(out._handle, out.size, p):
                return out
        return _nd.NDArray(_random.randb(*shape, p=p), device=self, dtype=dtype)

    def bernoulli_into(self, out: Any, n: int, p: float) -> bool:
        """Make ``needle.random.randb``'s draw of ``n`` values into the first ``n``
        elements of buffer ``out`` with the backend's ``bernoulli_mt19937``; False (nothing
        drawn) where the backend lacks it or ``needle.random.bernoulli_into`` cannot."""
        if not self.has_kernel("bernoulli_mt19937"):
            return False
        return _random.bernoulli_into(self.kernels.bernoulli_mt19937, out, n, p)

    def Array(self, size: int, dtype: str = "float32") -> Any:  # the course's name
        """A new flat buffer of ``size`` elements (the course's ``device.Array``)."""
        return self.alloc(size, dtype)

    def one_hot(self, n: int, i: Any, dtype: str = "float32") -> Any:
        """Rows of the ``n``-by-``n`` identity selected by integer indices ``i``."""
        return _nd.one_hot(n, i, dtype=dtype, device=self)


def forget_devices(name: str) -> None:
    """Drop cached devices of backend ``name`` (after it is unregistered)."""
    for key in [k for k in _DEVICES if k[0] == name]:
        del _DEVICES[key]
    for akey in [k for k in _ALIASES if k[0] == name]:
        del _ALIASES[akey]


on_unregister(forget_devices)


def device(spec: str | Device | None = None) -> Device:
    """The device named by ``spec``: ``"cpp"``, ``"cuda:1"``, a ``Device``, or ``None``.

    ``None`` means the default device (see :func:`default_device`). Raises
    :class:`BackendError` naming the installed backends when the name is unknown.
    """
    if isinstance(spec, Device):
        return spec._plain
    if spec is None:
        return default_device()
    if not isinstance(spec, str):
        raise TypeError(f"device: expected a name like 'cpp' or 'cuda:1', got {spec!r}")
    name, _, idx = spec.partition(":")
    if idx and not idx.isdigit():
        raise ValueError(f"device: bad device index in {spec!r}")
    key = (name, int(idx or 0))
    dev = _DEVICES.get(key)
    if dev is None:
        REGISTRY.get(name)  # raises, listing what is installed
        # setdefault: two threads asking at once get the same Device object
        dev = _DEVICES.setdefault(key, Device(*key))
    return dev


def _usable_or_raise(name: str) -> Device:
    dev = device(name)
    status = dev.backend.status()
    if not status.usable:
        raise BackendError(
            f"needle backend {name!r} is installed but not usable here: {status.reason}. "
            + REGISTRY.summary()
        )
    return dev


def default_device() -> Device:
    """The default device: ``NEEDLE_BACKEND`` if set, else ``cpp`` if usable, else ``numpy``.

    The variable is read each time a default is needed (never at import).
    """
    name = os.environ.get("NEEDLE_BACKEND", "").strip()
    if name:
        return _usable_or_raise(name)
    for candidate in ("cpp", "numpy"):  # by name: imports no other plugin
        b = REGISTRY.find(candidate)
        if b is not None and b.status().usable:
            return device(candidate)
    for b in REGISTRY.backends().values():
        if b.status().usable:
            return device(b.name)
    raise BackendError("needle found no usable backend. " + REGISTRY.summary())


def _course_device(dev: Device, label: str) -> Device:
    """``dev`` under the course's name: equal to ``dev``, but ``str()`` is ``label``."""
    key = (dev.name, dev.index, label)
    alias = _ALIASES.get(key)
    if alias is None:
        alias = Device(dev.name, dev.index, label)
        alias._plain = dev
        alias = _ALIASES.setdefault(key, alias)
    return alias


_ALIASES: dict[tuple[str, int, str], Device] = {}


def cpu() -> Device:
    """The CPU device of the course's API; ``str(cpu()) == "cpu()"``.

    ``NEEDLE_BACKEND``'s backend when it names one other than ``cuda``; else the C++
    backend when usable, else the NumPy backend. It equals ``device(name)``.
    """
    name = os.environ.get("NEEDLE_BACKEND", "").strip()
    if name and name.partition(":")[0] != "cuda":
        return _course_device(_usable_or_raise(name), "cpu()")
    b = REGISTRY.find("cpp")
    dev = device("cpp") if b is not None and b.status().usable else device("numpy")
    return _course_device(dev, "cpu()")


def cpu_numpy() -> Device:
    """The NumPy reference backend; ``str(cpu_numpy()) == "cpu_numpy()"``."""
    return _course_device(device("numpy"), "cpu_numpy()")


def cuda(index: int = 0) -> Device:
    """The CUDA device ``index``; ``enabled()`` is false where it cannot run.

    Unlike :func:`device`, this returns a device even when the CUDA backend is not
    installed, so course code can test ``ndl.cuda().enabled()``.
    """
    key = ("cuda", index)
    dev = _DEVICES.get(key)
    if dev is None:
        dev = Device("cuda", index)
        if REGISTRY.find("cuda") is not None:
            dev = _DEVICES.setdefault(key, dev)
    return _course_device(dev, "cuda()" if index == 0 else f"cuda({index})")


def all_devices() -> list[Device]:
    """One device per usable backend and index."""
    out: list[Device] = []
    for b in REGISTRY.backends().values():
        st = b.status()
        if st.usable:
            out.extend(device(f"{b.name}:{i}") for i in range(st.device_count))
    return out


# Late imports: the constructors above build NDArrays, and ndarray.py imports this module.
from .. import random as _random  # noqa: E402
from . import ndarray as _nd  # noqa: E402
