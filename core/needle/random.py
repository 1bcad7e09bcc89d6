"""needle's seeded random generator (``needle.manual_seed``)."""

from __future__ import annotations

import numpy as np

_GENERATOR = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed needle's generator so that initialisation, dropout and shuffling repeat."""
    global _GENERATOR
    _GENERATOR = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    """The generator every random draw in needle uses."""
    return _GENERATOR
