"""Discovery and validation of backend plugins.

Discovery is lazy: nothing here runs at ``import needle``. The first call that needs a
backend lists the ``needle.backends`` entry points, imports each plugin module (plugin
modules are light by contract), checks its hooks and contract version, and records
either a :class:`Backend` or a failure with its reason. Kernels are loaded and checked
against the contract's :data:`~needle.backends.contract.KERNELS` (presence and arity)
only when a device of the backend is first used.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._arity import arity_of
from ._errors import BackendError, PluginError
from ._fallback import FallbackTable
from .contract import CONTRACT_VERSION, KERNELS, OPTIONAL_KERNELS, REQUIRED_KERNELS
from .info import BackendInfo, BackendStatus

ENTRY_POINT_GROUP = "needle.backends"


class _LazyHookimplMarker:
    """``pluggy.HookimplMarker("needle")``, built on first use to keep ``import needle`` cheap."""

    _marker: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._marker is None:
            import pluggy

            type(self)._marker = pluggy.HookimplMarker("needle")
        return self._marker(*args, **kwargs)


hookimpl = _LazyHookimplMarker()
"""Marker for a plugin's hook implementations: ``@needle.backends.hookimpl``."""
_HOOKS = ("needle_backend_info", "needle_backend_status", "needle_backend_load")


def strict_plugins() -> bool:
    """Whether ``NEEDLE_STRICT_PLUGINS`` asks for plugin failures to raise."""
    return os.environ.get("NEEDLE_STRICT_PLUGINS", "") not in ("", "0")


def fallback_enabled() -> bool:
    """Whether ``NEEDLE_FALLBACK`` lets missing kernels run through NumPy."""
    return os.environ.get("NEEDLE_FALLBACK", "") not in ("", "0")


@dataclass
class Failure:
    """A plugin that could not be used, and why."""

    name: str
    source: str
    reason: str


@dataclass
class Backend:
    """A registered backend: its description, its plugin and its loaded kernels."""

    info: BackendInfo
    plugin: Any
    source: str
    distribution: str = ""
    _status: BackendStatus | None = None
    _kernels: dict[int, Any] = field(default_factory=dict)
    kernel_error: str = ""
    fallback_kernels: tuple[str, ...] = ()
    _loading: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.info.name

    def _hook(self, hook: str, **kwargs: Any) -> Any:
        return getattr(self.plugin, hook)(**kwargs)

    def status(self) -> BackendStatus:
        """Ask the plugin (once) whether it can run here; a raising probe is unusable."""
        if self._status is None:
            try:
                status = self._hook("needle_backend_status")
                if not isinstance(status, BackendStatus):
                    raise TypeError(f"returned {type(status).__name__}, not BackendStatus")
            except Exception as exc:  # a broken probe must not break needle
                status = BackendStatus(False, f"status probe failed: {exc!r}", 0)
            if status.usable and self.kernel_error:
                status = BackendStatus(False, self.kernel_error, status.device_count)
            self._status = status
        return self._status

    def kernels(self, index: int = 0) -> Any:
        """The validated kernel table of device ``index``, loaded on first use."""
        table = self._kernels.get(index)
        if table is not None:
            return table
        status = self.status()
        if not status.usable:
            raise BackendError(f"needle backend {self.name!r} is not usable here: {status.reason}")
        if not 0 <= index < status.device_count:
            raise BackendError(
                f"needle backend {self.name!r} has {status.device_count} device(s); "
                f"index {index} is out of range"
            )
        if index in self._loading:
            self._fail("needle_backend_load asked for its own kernels while loading them")
        self._loading.add(index)
        try:
            table = self._hook("needle_backend_load", index=index)
        except PluginError:
            raise
        except Exception as exc:
            self._fail(f"loading kernels failed: {exc!r}")
        finally:
            self._loading.discard(index)
        table = self._validate(table)
        self._kernels[index] = table
        return table

    def _fail(self, reason: str) -> None:
        self.kernel_error = reason
        self._status = BackendStatus(False, reason, 0)
        raise PluginError(f"needle backend {self.name!r} ({self.source}): {reason}")

    def _validate(self, table: Any) -> Any:
        missing = [k for k in REQUIRED_KERNELS if not callable(getattr(table, k, None))]
        undeclared = [
            k for k in self.info.optional_kernels if not callable(getattr(table, k, None))
        ]
        if undeclared:
            self._fail(f"declares optional kernels it does not provide: {', '.join(undeclared)}")
        present = [k for k in (*REQUIRED_KERNELS, *self.info.optional_kernels) if k not in missing]
        wrong = _arity_mismatches(table, present)
        if wrong:
            self._fail("kernels with the wrong number of parameters: " + "; ".join(wrong))
        if not missing:
            return table
        if not fallback_enabled():
            self._fail(
                f"missing required kernels: {', '.join(missing)} "
                "(set NEEDLE_FALLBACK=1 to run them through NumPy)"
            )
        self.fallback_kernels = tuple(missing)
        return FallbackTable(self.name, table, missing, _reference_kernels)

    def has_kernel(self, name: str) -> bool:
        """Whether the backend declares optional kernel ``name``."""
        return name in self.info.optional_kernels


class Registry:
    """All backends known to this process (entry points plus in-process plugins)."""

    def __init__(self) -> None:
        self._pm: Any = None
        self._backends: dict[str, Backend] = {}
        self._failures: list[Failure] = []
        self._discovered = False
        self._lock = threading.RLock()

    # --- discovery ---------------------------------------------------------------
    def discover(self) -> None:
        """Load entry points once (idempotent)."""
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
            from importlib import metadata

            import pluggy

            from . import hookspecs

            self._pm = pluggy.PluginManager("needle")
            self._pm.add_hookspecs(hookspecs)
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = getattr(ep, "dist", None)
                dist_name = dist.metadata["Name"] if dist is not None else ""
                source = f"entry point {ep.name} = {ep.value}"
                try:
                    plugin = ep.load()
                except Exception as exc:
                    self._report(Failure(ep.name, source, f"import failed: {exc!r}"))
                    continue
                self._add(plugin, source, dist_name, expected_name=ep.name)

    def register(self, plugin: Any, *, source: str = "in-process") -> Backend | None:
        """Register a plugin object or module directly (tests, notebooks)."""
        with self._lock:
            self.discover()
            return self._add(plugin, source, "")

    def unregister(self, name: str) -> None:
        """Forget backend ``name`` (and any recorded failure under that name)."""
        with self._lock:
            backend = self._backends.pop(name, None)
            if backend is not None and self._pm.is_registered(backend.plugin):
                self._pm.unregister(backend.plugin)
            self._failures = [f for f in self._failures if f.name != name]

    def _report(self, failure: Failure) -> None:
        self._failures.append(failure)
        if strict_plugins():
            raise PluginError(
                f"needle plugin {failure.name!r} ({failure.source}): {failure.reason}"
            )

    def _add(
        self, plugin: Any, source: str, dist_name: str, expected_name: str | None = None
    ) -> Backend | None:
        label = str(expected_name or getattr(plugin, "__name__", type(plugin).__name__))
        missing = [h for h in _HOOKS if not callable(getattr(plugin, h, None))]
        if missing:
            self._report(Failure(label, source, f"does not implement hooks: {', '.join(missing)}"))
            return None
        try:
            self._pm.register(plugin, name=f"{label}@{id(plugin)}")
        except Exception as exc:  # pluggy's signature validation
            self._report(Failure(label, source, f"invalid hook implementation: {exc}"))
            return None
        try:
            info = plugin.needle_backend_info()
            if not isinstance(info, BackendInfo):
                raise TypeError(f"needle_backend_info returned {type(info).__name__}")
        except Exception as exc:
            self._pm.unregister(plugin)
            self._report(Failure(label, source, f"needle_backend_info failed: {exc!r}"))
            return None
        reason = self._check_info(info)
        if reason is None and expected_name is not None and info.name != expected_name:
            reason = f"entry point name {expected_name!r} differs from backend name {info.name!r}"
        if reason is None and info.name in self._backends:
            other = self._backends[info.name]
            reason = f"name {info.name!r} is already taken by {other.distribution or other.source}"
        if reason is not None:
            self._pm.unregister(plugin)
            self._report(Failure(expected_name or info.name or label, source, reason))
            return None
        backend = Backend(info=info, plugin=plugin, source=source, distribution=dist_name)
        self._backends[info.name] = backend
        return backend

    @staticmethod
    def _check_info(info: BackendInfo) -> str | None:
        major = next(iter(info.contract_version))
        if major != CONTRACT_VERSION[0]:
            have = ".".join(map(str, info.contract_version))
            want = ".".join(map(str, CONTRACT_VERSION))
            return f"built for backend contract {have}, but this needle implements {want}"
        if not info.name or ":" in info.name:
            return f"invalid backend name {info.name!r}"
        unknown = [k for k in info.optional_kernels if k not in OPTIONAL_KERNELS]
        if unknown:
            return f"declares unknown optional kernels: {', '.join(unknown)}"
        if "float32" not in info.dtypes:
            return "does not support float32, which every backend must"
        return None

    # --- queries -----------------------------------------------------------------
    def backends(self) -> dict[str, Backend]:
        self.discover()
        return dict(self._backends)

    def failures(self) -> list[Failure]:
        self.discover()
        return list(self._failures)

    def get(self, name: str) -> Backend:
        """The backend called ``name``, or a :class:`BackendError` listing what exists."""
        self.discover()
        backend = self._backends.get(name)
        if backend is None:
            raise BackendError(f"needle backend {name!r} is not installed. {self.summary()}")
        return backend

    def summary(self) -> str:
        """One paragraph naming every installed backend and every failed plugin."""
        parts = []
        for b in self._backends.values():
            st = b.status()
            parts.append(b.name + (" (usable)" if st.usable else f" (unusable: {st.reason})"))
        text = "Installed backends: " + (", ".join(parts) if parts else "none") + "."
        if self._failures:
            text += (
                " Plugins that failed: "
                + "; ".join(f"{f.name} ({f.reason})" for f in self._failures)
                + "."
            )
        return text


REGISTRY = Registry()


def register_plugin(plugin: Any) -> Backend | None:
    """Register a backend plugin in-process, without an entry point.

    Returns the registered :class:`Backend`, or ``None`` when the plugin was refused (the
    reason is listed by :func:`plugin_failures`; with ``NEEDLE_STRICT_PLUGINS=1`` it raises).
    """
    return REGISTRY.register(plugin)


_UNREGISTER_LISTENERS: list[Callable[[str], None]] = []


def on_unregister(listener: Callable[[str], None]) -> None:
    """Call ``listener(name)`` after a backend is unregistered (caches above the host use it)."""
    _UNREGISTER_LISTENERS.append(listener)


def unregister_plugin(name: str) -> None:
    """Remove backend ``name`` registered in-process (or by entry point)."""
    REGISTRY.unregister(name)
    for listener in _UNREGISTER_LISTENERS:
        listener(name)


def list_backends() -> dict[str, Backend]:
    """Every registered backend, by name."""
    return REGISTRY.backends()


def plugin_failures() -> list[Failure]:
    """Every plugin that was refused, with the reason."""
    return REGISTRY.failures()


def _reference_kernels() -> Any:
    """The NumPy backend's kernel table (what ``NEEDLE_FALLBACK`` runs missing kernels on)."""
    return REGISTRY.get("numpy").kernels(0)


def _arity_mismatches(table: Any, names: list[str]) -> list[str]:
    """One line per kernel of ``names`` whose parameter count differs from its record.

    A kernel whose arity cannot be determined (see ``_arity``) passes.
    """
    wrong = []
    for name in names:
        spec = KERNELS[name]
        found = arity_of(getattr(table, name))
        if found is not None and not found.accepts(spec.arity):
            wrong.append(
                f"{name} must be {spec.signature} ({spec.arity} parameters), "
                f"found {name}{found.shown}"
            )
    return wrong
