"""needle-conformance: the suite every needle backend is held to.

``pytest --pyargs needle_conformance --needle-backend=NAME`` runs it (this package is a
pytest plugin, registered through the ``pytest11`` entry point); ``run`` and ``main`` run
it from Python and from the ``needle conformance`` command. The reference is NumPy in
float64, never a needle backend. See the package README for the options.
"""

from __future__ import annotations

from ._runner import main, pytest_args, run
from ._table import AREAS, Failure, Table, summary

__version__ = "0.1.0"

__all__ = ["AREAS", "Failure", "Table", "main", "pytest_args", "run", "summary"]
