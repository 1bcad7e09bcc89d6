"""The plugin host: discovery, validation and selection of array backends.

Backends are pluggy plugins found through the ``needle.backends`` entry-point group
(or registered in-process with :func:`register_plugin`). See ``hookspecs`` for the
hooks a plugin implements and ``contract`` for the kernels it provides.
"""

from __future__ import annotations

import pluggy

hookimpl = pluggy.HookimplMarker("needle")
"""Marker for a plugin's hook implementations: ``@needle.backends.hookimpl``."""

from .contract import CONTRACT_VERSION, OPTIONAL_KERNELS, REQUIRED_KERNELS  # noqa: E402
from .info import BackendInfo, BackendStatus  # noqa: E402
from ._device import (  # noqa: E402
    Device,
    all_devices,
    cpu,
    cpu_numpy,
    cuda,
    default_device,
    device,
)
from ._errors import BackendError, PluginError  # noqa: E402
from ._registry import (  # noqa: E402
    REGISTRY,
    Backend,
    Failure,
    list_backends,
    plugin_failures,
    register_plugin,
    unregister_plugin,
)

__all__ = [
    "CONTRACT_VERSION",
    "OPTIONAL_KERNELS",
    "REQUIRED_KERNELS",
    "REGISTRY",
    "Backend",
    "BackendError",
    "BackendInfo",
    "BackendStatus",
    "Device",
    "Failure",
    "PluginError",
    "all_devices",
    "cpu",
    "cpu_numpy",
    "cuda",
    "default_device",
    "device",
    "hookimpl",
    "list_backends",
    "plugin_failures",
    "register_plugin",
    "unregister_plugin",
]
