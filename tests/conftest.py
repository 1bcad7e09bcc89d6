"""Shared fixtures for the core tests."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(params=["numpy", "cpp"])
def dev(request: pytest.FixtureRequest) -> ndl.Device:
    """Each CPU backend's device; skipped where that backend is missing or unusable."""
    try:
        d = ndl.device(request.param)
    except Exception as exc:  # not installed
        pytest.skip(f"backend {request.param}: {exc}")
    if not d.enabled():
        pytest.skip(f"backend {request.param} not usable here")
    return d
