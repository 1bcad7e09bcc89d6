"""The backend author's kit: ``needle new-backend`` and ``needle conformance``.

Both commands reach the ``needle`` command through the ``needle.commands`` entry-point
group (see :mod:`needle_conformance.kit.commands`); from Python,
:func:`create_backend` generates a backend and :func:`needle_conformance.run` runs the
suite.
"""

from __future__ import annotations

from .scaffold import RESERVED_NAMES, check_name, core_requirement, create_backend, render_kernels

__all__ = ["RESERVED_NAMES", "check_name", "core_requirement", "create_backend", "render_kernels"]
