"""Shared fixtures for the core tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for `import gradcheck`

os.environ.setdefault("NEEDLE_DATA", str(Path(__file__).resolve().parents[1] / "data"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
