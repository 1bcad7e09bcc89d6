"""Exceptions raised by the plugin host."""

from __future__ import annotations


class BackendError(RuntimeError):
    """A backend was asked for that is not installed, not usable or broken."""


class PluginError(BackendError):
    """A plugin failed to import, to validate, or claimed a taken name (strict mode)."""
