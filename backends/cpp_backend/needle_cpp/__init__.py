"""needle-cpp: the C++ array backend for needle.

The plugin module is :mod:`needle_cpp.plugin` (found through the ``needle.backends`` entry
point). The kernels live in the compiled module :mod:`needle_cpp._core`, imported lazily:
``import needle_cpp`` stays cheap, and ``needle_cpp.kernels()`` loads them.
"""

from __future__ import annotations

from types import ModuleType

__version__ = "0.1.0"
__all__ = ["__version__", "kernels"]


def kernels() -> ModuleType:
    """Import and return the compiled kernel module ``needle_cpp._core``."""
    from . import _core

    return _core
