"""Discovery and validation of backend plugins.

Discovery is lazy: nothing here runs at ``import needle``. The first call that needs a
backend lists the ``needle.backends`` entry points, imports each plugin module (plugin
modules are light by contract), checks its hooks and contract version, and records
either a :class:`Backend` or a failure with its reason. Asking for one backend by name
imports only the plugin whose entry point has that name; listing every backend imports
them all. Every call into a plugin is isolated: whatever it raises (``SystemExit``
included; only ``KeyboardInterrupt`` passes) becomes a recorded failure, and every hook
result is checked by type before needle uses it. Kernels are loaded and checked
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


_STRICT_ON = ("1", "true", "yes")
_STRICT_OFF = ("", "0", "false", "no")

# The in-tree distributions and the backend name each one owns: a stray distribution
# that claims one of these names is refused, and the in-tree one keeps it.
_IN_TREE = {
    "needle-core": "numpy",
    "needle-numpy": "numpy",
    "needle-cpp": "cpp",
    "needle-cuda": "cuda",
}


def strict_plugins() -> bool:
    """Whether ``NEEDLE_STRICT_PLUGINS`` asks for plugin failures to raise.

    Raises:
        ValueError: the variable is set to something other than ``1``/``true``/``yes``
            (on) or ``0``/``false``/``no`` (off).
    """
    raw = os.environ.get("NEEDLE_STRICT_PLUGINS", "").strip().lower()
    if raw in _STRICT_ON:
        return True
    if raw in _STRICT_OFF:
        return False
    raise ValueError(
        f"NEEDLE_STRICT_PLUGINS={os.environ['NEEDLE_STRICT_PLUGINS']!r} is not understood: "
        "use 1, true or yes to turn strict plugin checks on (0, false, no or unset: off)"
    )


def _describe(exc: BaseException) -> str:
    """How a plugin's exception is reported (``SystemExit`` says what the plugin did)."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    return repr(exc)


def _is_str_seq(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def info_problem(info: Any) -> str | None:
    """Why ``info`` is not a valid :class:`BackendInfo` (field by field), or ``None``."""
    if not isinstance(info, BackendInfo):
        return f"needle_backend_info returned {type(info).__name__}, not BackendInfo"
    if not isinstance(info.name, str) or not info.name or ":" in info.name:
        return f"invalid backend name {info.name!r} (a non-empty str without ':')"
    if not isinstance(info.version, str):
        return f"version must be a str, got {info.version!r}"
    cv = info.contract_version
    if not isinstance(cv, (tuple, list)) or len(cv) != 2 or not all(_is_int(v) for v in cv):
        return f"contract_version must be a (major, minor) pair of ints, got {cv!r}"
    if not _is_str_seq(info.dtypes):
        return f"dtypes must be a tuple of str, got {info.dtypes!r}"
    if not _is_str_seq(info.optional_kernels):
        return f"optional_kernels must be a tuple of str, got {info.optional_kernels!r}"
    if not isinstance(info.description, str):
        return f"description must be a str, got {info.description!r}"
    return None


def status_problem(status: Any) -> str | None:
    """Why ``status`` is not a valid :class:`BackendStatus`, or ``None``."""
    if not isinstance(status, BackendStatus):
        return f"returned {type(status).__name__}, not BackendStatus"
    if not isinstance(status.usable, bool):
        return f"usable must be a bool, got {status.usable!r}"
    if not isinstance(status.reason, str):
        return f"reason must be a str, got {status.reason!r}"
    if not _is_int(status.device_count) or status.device_count < 0:
        return f"device_count must be an int >= 0, got {status.device_count!r}"
    return None


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
    # One lock per backend: a second thread asking for kernels while the first loads
    # them waits for that load instead of failing (re-entry from the same thread, a
    # plugin asking for its own kernels while loading them, is still caught).
    _lock: Any = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.info.name

    def _hook(self, hook: str, **kwargs: Any) -> Any:
        return getattr(self.plugin, hook)(**kwargs)

    def status(self) -> BackendStatus:
        """Ask the plugin (once) whether it can run here; a raising probe is unusable."""
        status = self._status
        if status is not None:
            return status
        with self._lock:
            if self._status is None:
                try:
                    status = self._hook("needle_backend_status")
                    problem = status_problem(status)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # a broken probe must not break needle
                    status, problem = None, _describe(exc)
                if problem is not None or status is None:
                    reason = problem or "the status hook returned nothing"
                    status = BackendStatus(False, f"status probe failed: {reason}", 0)
                if status.usable and self.kernel_error:
                    status = BackendStatus(False, self.kernel_error, status.device_count)
                self._status = status
            return self._status

    def kernels(self, index: int = 0) -> Any:
        """The validated kernel table of device ``index``, loaded on first use."""
        table = self._kernels.get(index)
        if table is not None:
            return table
        with self._lock:
            return self._load_kernels(index)

    def _load_kernels(self, index: int) -> Any:
        table = self._kernels.get(index)
        if table is not None:  # loaded by another thread while this one waited
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
        except (PluginError, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fail(f"loading kernels failed: {_describe(exc)}")
        finally:
            self._loading.discard(index)
        try:
            table = self._validate(table)
        except (PluginError, KeyboardInterrupt):
            raise
        except BaseException as exc:  # a table whose attributes raise
            self._fail(f"the kernel table could not be inspected: {_describe(exc)}")
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


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    try:
        return str(dist.metadata["Name"]) if dist is not None else ""
    except Exception:  # a distribution with broken metadata
        return ""


def _normal(dist_name: str) -> str:
    return dist_name.lower().replace("_", "-").replace(".", "-")


class Registry:
    """All backends known to this process (entry points plus in-process plugins)."""

    def __init__(self) -> None:
        self._pm: Any = None
        self._backends: dict[str, Backend] = {}
        self._failures: list[Failure] = []
        # entry points listed but not imported yet, by name (= the backend's name)
        self._pending: dict[str, tuple[Any, str, str]] = {}
        self._discovered = False
        self._quiet = False  # strict discovery collects failures before raising
        self._lock = threading.RLock()

    # --- discovery ---------------------------------------------------------------
    def discover(self) -> None:
        """List the entry points once; import none of them (idempotent).

        Nothing is recorded until the listing has succeeded, so a discovery that fails
        (an interrupted import of pluggy, a bad ``NEEDLE_STRICT_PLUGINS``) is simply
        retried by the next call. With strict plugins every plugin is imported at once,
        so any failure raises here.
        """
        with self._lock:
            if self._discovered:
                return
            strict = strict_plugins()  # a bad value raises before any state changes
            from importlib import metadata

            import pluggy

            from . import hookspecs

            pm = self._pm
            if pm is None:
                pm = pluggy.PluginManager("needle")
                pm.add_hookspecs(hookspecs)
            by_name: dict[str, list[Any]] = {}
            for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
                by_name.setdefault(ep.name, []).append(ep)
            pending: dict[str, tuple[Any, str, str]] = {}
            failures: list[Failure] = []
            for name, eps in by_name.items():
                entries = [
                    (ep, f"entry point {ep.name} = {ep.value}", _dist_name(ep)) for ep in eps
                ]
                if len(entries) == 1:
                    pending[name] = entries[0]
                    continue
                owners = [e for e in entries if _IN_TREE.get(_normal(e[2])) == name]
                if len(owners) == 1:
                    pending[name] = owners[0]
                    failures.extend(
                        Failure(
                            name,
                            source,
                            f"name {name!r} is already taken by the in-tree distribution "
                            f"{owners[0][2]} (this plugin comes from {dist or 'no distribution'})",
                        )
                        for ep, source, dist in entries
                        if ep is not owners[0][0]
                    )
                    continue
                dists = ", ".join(dist or source for _, source, dist in entries)
                failures.extend(
                    Failure(
                        name,
                        source,
                        f"name {name!r} is claimed by several distributions ({dists}); "
                        "none of them is used: uninstall all but one",
                    )
                    for _, source, _ in entries
                )
            self._pm = pm
            self._pending = pending
            self._failures.extend(failures)
            self._discovered = True
            if strict:  # import everything, then raise once, naming every failure
                self._quiet = True
                try:
                    self._load_all()
                finally:
                    self._quiet = False
                if self._failures:
                    raise PluginError(
                        "needle plugins failed (NEEDLE_STRICT_PLUGINS is on): "
                        + "; ".join(f"{f.name!r} ({f.source}): {f.reason}" for f in self._failures)
                    )

    def _load(self, name: str) -> None:
        """Import the plugin of entry point ``name`` if it is still pending (under the lock)."""
        entry = self._pending.pop(name, None)
        if entry is None:
            return
        ep, source, dist_name = entry
        try:
            plugin = ep.load()
        except KeyboardInterrupt:
            self._pending[name] = entry  # not imported: the next call tries again
            raise
        except BaseException as exc:  # SystemExit included: a plugin never ends needle
            self._report(Failure(name, source, f"import failed: {_describe(exc)}"))
            return
        self._add(plugin, source, dist_name, expected_name=name)

    def _load_all(self) -> None:
        for name in list(self._pending):
            self._load(name)

    def register(self, plugin: Any, *, source: str = "in-process") -> Backend | None:
        """Register a plugin object or module directly (tests, notebooks)."""
        with self._lock:
            self.discover()
            return self._add(plugin, source, "")

    def unregister(self, name: str) -> None:
        """Forget backend ``name`` (and any recorded failure under that name)."""
        with self._lock:
            self._pending.pop(name, None)
            backend = self._backends.pop(name, None)
            if backend is not None and self._pm.is_registered(backend.plugin):
                self._pm.unregister(backend.plugin)
            self._failures = [f for f in self._failures if f.name != name]

    def _report(self, failure: Failure) -> None:
        self._failures.append(failure)
        if not self._quiet and strict_plugins():
            raise PluginError(
                f"needle plugin {failure.name!r} ({failure.source}): {failure.reason}"
            )

    def _unregister_quietly(self, plugin: Any) -> None:
        try:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
        except Exception:  # an object pluggy cannot even look up: nothing to undo
            pass

    def _add(
        self, plugin: Any, source: str, dist_name: str, expected_name: str | None = None
    ) -> Backend | None:
        try:
            label = str(expected_name or getattr(plugin, "__name__", type(plugin).__name__))
            missing = [h for h in _HOOKS if not callable(getattr(plugin, h, None))]
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a plugin object whose attributes raise
            self._report(Failure(str(expected_name), source, f"unreadable: {_describe(exc)}"))
            return None
        if missing:
            self._report(Failure(label, source, f"does not implement hooks: {', '.join(missing)}"))
            return None
        try:
            self._pm.register(plugin, name=f"{label}@{id(plugin)}")
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # pluggy's signature validation
            self._report(Failure(label, source, f"invalid hook implementation: {exc}"))
            return None
        try:
            info = plugin.needle_backend_info()
            reason = info_problem(info)
        except KeyboardInterrupt:
            self._unregister_quietly(plugin)
            raise
        except BaseException as exc:
            info, reason = None, f"needle_backend_info failed: {_describe(exc)}"
        if reason is None:
            reason = self._check_info(info)
        if reason is None and expected_name is not None and info.name != expected_name:
            reason = f"entry point name {expected_name!r} differs from backend name {info.name!r}"
        if reason is None and expected_name is None:
            self._load(info.name)  # an entry point of that name is resolved first
        if reason is None and info.name in self._backends:
            other = self._backends[info.name]
            reason = f"name {info.name!r} is already taken by {other.distribution or other.source}"
        if reason is not None:
            self._unregister_quietly(plugin)
            name = expected_name or (info.name if info_problem(info) is None else label)
            self._report(Failure(name, source, reason))
            return None
        backend = Backend(info=info, plugin=plugin, source=source, distribution=dist_name)
        self._backends[info.name] = backend
        return backend

    @staticmethod
    def _check_info(info: BackendInfo) -> str | None:
        major = info.contract_version[0]
        if major != CONTRACT_VERSION[0]:
            have = ".".join(map(str, info.contract_version))
            want = ".".join(map(str, CONTRACT_VERSION))
            return f"built for backend contract {have}, but this needle implements {want}"
        unknown = [k for k in info.optional_kernels if k not in OPTIONAL_KERNELS]
        if unknown:
            return f"declares unknown optional kernels: {', '.join(unknown)}"
        if "float32" not in info.dtypes:
            return "does not support float32, which every backend must"
        return None

    # --- queries -----------------------------------------------------------------
    def backends(self) -> dict[str, Backend]:
        """Every backend (imports every plugin not imported yet)."""
        self.discover()
        with self._lock:
            self._load_all()
            return dict(self._backends)

    def failures(self) -> list[Failure]:
        """Every refused plugin (imports every plugin not imported yet)."""
        self.discover()
        with self._lock:
            self._load_all()
            return list(self._failures)

    def find(self, name: str) -> Backend | None:
        """The backend called ``name``, or ``None``; imports no other plugin."""
        self.discover()
        with self._lock:
            self._load(name)
            return self._backends.get(name)

    def loaded(self, name: str) -> Backend | None:
        """The backend called ``name`` if it is registered already, else ``None``: one
        dictionary read, no discovery and no lock (a registered backend is complete
        before it is stored). The hot path of :class:`~needle.backend_ndarray.Device`."""
        return self._backends.get(name)

    def get(self, name: str) -> Backend:
        """The backend called ``name``, or a :class:`BackendError` listing what exists."""
        backend = self.find(name)
        if backend is None:
            raise BackendError(f"needle backend {name!r} is not installed. {self.summary()}")
        return backend

    def summary(self) -> str:
        """One paragraph naming every installed backend and every failed plugin."""
        backends = self.backends()
        parts = []
        for b in backends.values():
            st = b.status()
            parts.append(b.name + (" (usable)" if st.usable else f" (unusable: {st.reason})"))
        text = "Installed backends: " + (", ".join(parts) if parts else "none") + "."
        failures = self.failures()
        if failures:
            text += (
                " Plugins that failed: "
                + "; ".join(f"{f.name} ({f.reason})" for f in failures)
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
