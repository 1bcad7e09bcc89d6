"""The plugin host: discovery, validation and selection of array backends.

The host knows nothing of arrays: ``Device`` and ``NDArray`` live one layer up, in
``needle.backend_ndarray``, and reach backends through :data:`REGISTRY`.

Backends are pluggy plugins found through the ``needle.backends`` entry-point group
(or registered in-process with :func:`register_plugin`). See ``hookspecs`` for the
hooks a plugin implements and ``contract`` for the kernels it provides.
"""

from __future__ import annotations

from ._errors import BackendError, PluginError
from ._registry import (
    REGISTRY,
    Backend,
    Failure,
    hookimpl,
    list_backends,
    on_unregister,
    plugin_failures,
    register_plugin,
    unregister_plugin,
)
from .contract import (
    CONTRACT_VERSION,
    KERNELS,
    OPTIONAL_KERNELS,
    REQUIRED_KERNELS,
    ErrorCase,
    KernelSpec,
    KernelTable,
    kernels_in_family,
)
from .info import BackendInfo, BackendStatus

__all__ = [
    "CONTRACT_VERSION",
    "KERNELS",
    "OPTIONAL_KERNELS",
    "REGISTRY",
    "REQUIRED_KERNELS",
    "Backend",
    "BackendError",
    "BackendInfo",
    "BackendStatus",
    "ErrorCase",
    "Failure",
    "KernelSpec",
    "KernelTable",
    "PluginError",
    "hookimpl",
    "kernels_in_family",
    "list_backends",
    "on_unregister",
    "plugin_failures",
    "register_plugin",
    "unregister_plugin",
]
