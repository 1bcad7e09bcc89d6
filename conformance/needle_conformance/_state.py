"""The suite's run-time choices (backend, dtypes, profile), set by the pytest plugin.

Test modules read these at collection time, after ``pytest_configure`` has filled them
in, to parametrize over dtypes and to pick the Hypothesis profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import hypothesis
import needle
from hypothesis import HealthCheck

FLOAT_DTYPES = ("float32", "float64")

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
hypothesis.settings.register_profile(
    "needle-ci",
    max_examples=12,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=_HEALTH,
)
hypothesis.settings.register_profile(
    "needle-thorough",
    max_examples=200,
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=_HEALTH,
)
PROFILES = ("ci", "thorough")


@dataclass
class Choices:
    """What this run tests: the backend's name, the dtypes (None: all it supports), the profile."""

    backend: str = ""
    dtypes: tuple[str, ...] | None = None
    profile: str = "ci"

    def __post_init__(self) -> None:
        if not self.backend:
            self.backend = os.environ.get("NEEDLE_BACKEND", "").strip() or "numpy"


CHOICES = Choices()


def device() -> needle.Device:
    """The device under test."""
    return needle.device(CHOICES.backend)


def dtypes() -> tuple[str, ...]:
    """The dtypes to test: ``--needle-dtypes``, else float32/float64 where supported."""
    if CHOICES.dtypes is None:
        try:
            supported = device().dtypes
        except Exception:  # an unknown backend: reported once, after collection
            supported = ("float32",)
        CHOICES.dtypes = tuple(d for d in FLOAT_DTYPES if d in supported)
    return CHOICES.dtypes


def check_backend() -> None:
    """Raise ``pytest.UsageError`` unless the backend under test is installed and usable."""
    import pytest

    name = CHOICES.backend
    try:
        dev = needle.device(name)
        usable = dev.enabled()
        reason = "" if usable else dev.backend.status().reason
    except Exception as exc:
        usable, reason = False, str(exc)
    if not usable:
        raise pytest.UsageError(f"needle conformance: cannot test backend {name!r}: {reason}")


def has_float64() -> bool:
    """Whether float64 is among the tested dtypes (gradient checks need it)."""
    return "float64" in dtypes()


def hypothesis_settings() -> hypothesis.settings:
    """The settings of the chosen profile; use as a decorator on ``@given`` tests."""
    return hypothesis.settings(hypothesis.settings.get_profile(f"needle-{CHOICES.profile}"))
