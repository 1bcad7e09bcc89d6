"""Deliberately broken backends, each the NumPy backend with one kernel wrong.

Load with ``pytest -p broken_backends`` (this folder on ``PYTHONPATH``): importing the
module registers ``broken_add``, ``broken_compact``, ``broken_reduce_max`` and
``broken_matmul`` in-process. Each wraps the kernel table of ``needle.device("numpy")``
(never ``needle_numpy`` itself) and overrides one kernel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import needle
import numpy as np
from needle.backends import REQUIRED_KERNELS, BackendInfo, BackendStatus, hookimpl


class BrokenBackend:
    """A plugin object: the NumPy backend's kernels with ``kernel`` replaced."""

    def __init__(self, name: str, kernel: str, make: Callable[[Any], Callable[..., Any]]) -> None:
        self.name, self.kernel, self.make = name, kernel, make

    def _base(self) -> Any:
        return needle.device("numpy").kernels

    @hookimpl
    def needle_backend_info(self) -> BackendInfo:
        info = needle.device("numpy").backend.info
        return dataclasses.replace(
            info, name=self.name, description=f"numpy with a broken {self.kernel}"
        )

    @hookimpl
    def needle_backend_status(self) -> BackendStatus:
        return BackendStatus(usable=True, device_count=1)

    @hookimpl
    def needle_backend_load(self, index: int) -> Any:
        base = self._base()
        names = [*REQUIRED_KERNELS, *needle.device("numpy").backend.info.optional_kernels]
        table = SimpleNamespace(**{n: getattr(base, n) for n in names})
        setattr(table, self.kernel, self.make(base))
        return table


def _add_off_by_1e3(k: Any) -> Callable[..., Any]:
    def ewise_add(a: Any, b: Any, out: Any) -> None:
        k.ewise_add(a, b, out)
        k.scalar_add(out, 1e-3, out)

    return ewise_add


def _compact_ignoring_offset(k: Any) -> Callable[..., Any]:
    def compact(a: Any, out: Any, shape: Any, strides: Any, offset: int) -> None:
        k.compact(a, out, shape, strides, 0)

    return compact


def _reduce_max_skipping_last(k: Any) -> Callable[..., Any]:
    def reduce_max(a: Any, out: Any, reduce_size: int) -> None:
        if reduce_size < 2:
            return k.reduce_max(a, out, reduce_size)
        rows = np.asarray(k.to_numpy(a, (out.size, reduce_size), (reduce_size, 1), 0))
        k.from_numpy(np.ascontiguousarray(rows[:, :-1].max(axis=1), dtype=out.dtype), out)
        return None

    return reduce_max


def _matmul_transposing_b(k: Any) -> Callable[..., Any]:
    def matmul(a: Any, b: Any, out: Any, m: int, n: int, p: int) -> None:
        x = np.asarray(k.to_numpy(a, (m, n), (n, 1), 0))
        y = np.asarray(k.to_numpy(b, (n, p), (1, n), 0))  # reads b as if column-major
        k.from_numpy(np.ascontiguousarray(x @ y, dtype=out.dtype).reshape(-1), out)

    return matmul


BROKEN = {
    "broken_add": ("ewise_add", _add_off_by_1e3),
    "broken_compact": ("compact", _compact_ignoring_offset),
    "broken_reduce_max": ("reduce_max", _reduce_max_skipping_last),
    "broken_matmul": ("matmul", _matmul_transposing_b),
}


def register() -> None:
    """Register every broken backend (idempotent)."""
    for name, (kernel, make) in BROKEN.items():
        if name not in needle.backends.list_backends():
            needle.backends.register_plugin(BrokenBackend(name, kernel, make))


register()
