"""Hook specifications of the needle backend contract.

A backend plugin is a module (or object) that implements these hooks with
``needle.backends.hookimpl``. It is found through the ``needle.backends`` entry-point
group, or registered in-process with :func:`needle.backends.register_plugin`.

The hooks are split by cost, so discovery stays cheap:

* :func:`needle_backend_info` must not import anything heavy; it runs when needle
  lists backends.
* :func:`needle_backend_status` may probe the machine (import CuPy, count GPUs); it
  runs when the backend is listed by ``needle backends`` or first selected.
* :func:`needle_backend_load` imports the kernels; it runs when a device of the
  backend is first used.
"""

from __future__ import annotations

from typing import Any

import pluggy

from .info import BackendInfo, BackendStatus

hookspec = pluggy.HookspecMarker("needle")


@hookspec
def needle_backend_info() -> BackendInfo:  # type: ignore[empty-body]
    """Describe the backend this plugin provides.

    Returns:
        A :class:`~needle.backends.BackendInfo` with the backend's name (``"cpp"``),
        its version, the contract version it was built for, the dtypes it supports and
        the optional kernels it provides. Must be cheap: no heavy imports.
    """


@hookspec
def needle_backend_status() -> BackendStatus:  # type: ignore[empty-body]
    """Tell whether the backend can run on this machine.

    Returns:
        A :class:`~needle.backends.BackendStatus`: ``usable`` (bool), ``reason`` (why
        not, e.g. ``"CuPy not installed"`` or ``"no CUDA device"``; empty when usable)
        and ``device_count`` (how many devices it sees; 1 for a CPU backend).
        Must not raise for an unusable machine: report it instead.
    """


@hookspec
def needle_backend_load(index: int) -> Any:
    """Load the kernels for device ``index`` of this backend.

    Args:
        index: the device index, ``0 <= index < device_count``.

    Returns:
        An object (usually a module or a namespace) shaped like
        :class:`needle.backends.contract.KernelTable`: one callable per required kernel
        of :data:`needle.backends.contract.KERNELS`, plus any optional kernels named in
        ``BackendInfo.optional_kernels``, each taking the parameters of its
        ``KernelSpec`` (registration checks presence and arity). Heavy imports belong
        here.
    """
