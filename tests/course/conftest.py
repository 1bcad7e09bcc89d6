"""Helpers for the course-compatibility suite (tests/course).

These tests follow the course's homework texts (hw0-hw4 of CMU 10-414/714): each one
exercises a function a student implements, the way the homework exercises it, and
compares with the course's formula written in NumPy. Random numbers come from NumPy's
global generator, as in the course: a test seeds it, and the expected values replay the
same seed through the course's ``np.random`` calls.
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _keep_global_rng_state():
    """Leave NumPy's global generator as the test found it."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)
