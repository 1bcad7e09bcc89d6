"""The plugin host: discovery, validation and selection of array backends.

Backends are pluggy plugins found through the ``needle.backends`` entry-point group
(or registered in-process with :func:`register_plugin`). See ``hookspecs`` for the
hooks a plugin implements and ``contract`` for the kernels it provides.
"""

from __future__ import annotations

from ._device import (
    Device,
    all_devices,
    cpu,
    cpu_numpy,
    cuda,
    default_device,
    device,
)
from ._errors import BackendError, PluginError
from ._registry import (
    REGISTRY,
    Backend,
    Failure,
    hookimpl,
    list_backends,
    plugin_failures,
    register_plugin,
    unregister_plugin,
)
from .contract import CONTRACT_VERSION, OPTIONAL_KERNELS, REQUIRED_KERNELS
from .info import BackendInfo, BackendStatus

__all__ = [
    "CONTRACT_VERSION",
    "OPTIONAL_KERNELS",
    "REGISTRY",
    "REQUIRED_KERNELS",
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
