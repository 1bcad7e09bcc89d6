"""Run a partial backend's missing kernels through the NumPy reference backend.

Enabled by ``NEEDLE_FALLBACK=1``. Each missing kernel copies its buffer arguments to
the host, runs the NumPy backend's kernel, and copies every buffer back. It is slow; it
exists so that a backend author can replace kernels one at a time and keep a working
backend while doing so.

This module imports nothing from the registry: the registry passes in a callable that
returns the reference kernel table, called on the first missing kernel's first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._errors import PluginError
from ._warn import warn_once

_BUFFER_KERNELS = ("alloc", "to_numpy", "from_numpy")


def _is_handle(x: Any) -> bool:
    return hasattr(x, "size") and hasattr(x, "dtype") and not isinstance(x, (int, float))


class FallbackTable:
    """A kernel table: the backend's own kernels, plus NumPy stand-ins for missing ones."""

    def __init__(
        self, backend: str, table: Any, missing: list[str], reference: Callable[[], Any]
    ) -> None:
        lacking = [k for k in _BUFFER_KERNELS if k in missing]
        if lacking:
            raise PluginError(
                f"needle backend {backend!r} cannot fall back to NumPy without its own "
                f"buffer kernels: missing {', '.join(lacking)}"
            )
        self._backend = backend
        self._table = table
        self._missing = set(missing)
        self._reference = reference

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._missing:
            return getattr(self._table, name)
        fn = self._stand_in(name)
        setattr(self, name, fn)
        return fn

    def _stand_in(self, name: str) -> Any:
        ref = self._reference()
        own = self._table

        def to_ref(h: Any) -> Any:
            r = ref.alloc(h.size, h.dtype)
            ref.from_numpy(own.to_numpy(h, (h.size,), (1,), 0), r)
            return r

        def kernel(*args: Any) -> Any:
            warn_once(f"needle backend {self._backend!r}: kernel {name!r} falls back to NumPy")
            pairs = [(a, to_ref(a)) for a in args if _is_handle(a)]
            mapped = iter(r for _, r in pairs)
            ref_args = [next(mapped) if _is_handle(a) else a for a in args]
            result = getattr(ref, name)(*ref_args)
            for h, r in pairs:  # inputs come back unchanged; outputs bring the result
                own.from_numpy(ref.to_numpy(r, (r.size,), (1,), 0), h)
            return result

        kernel.__name__ = name
        return kernel
