"""Assertions whose failure messages say what broke and how to reproduce it.

Every failure names the kernel or op, the shapes, strides and dtype involved, and ends
with a few lines of Python that reproduce it outside the suite.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

TOLERANCES: dict[str, tuple[float, float]] = {
    "float32": (2e-5, 1e-5),
    "float64": (1e-9, 1e-12),
}
"""Default (rtol, atol) per dtype for a result compared with NumPy in float64."""


def _format_repro(repro: str) -> str:
    return "Reproduce with:\n" + textwrap.indent(repro.strip("\n"), "    ")


def fail(what: str, detail: str, repro: str = "") -> None:
    """Fail the test with ``what``, ``detail`` and the reproducer (no Python traceback)."""
    message = f"{what}\n  {detail}"
    if repro:
        message += "\n" + _format_repro(repro)
    pytest.fail(message, pytrace=False)


def assert_close(
    actual: Any,
    expected: Any,
    *,
    what: str,
    repro: str = "",
    rtol: float = 0.0,
    atol: float = 0.0,
    dtype: str | None = None,
) -> None:
    """Fail unless ``actual`` matches ``expected`` (NaNs equal) in shape and value.

    Args:
        actual, expected: array-likes; ``expected`` is usually NumPy float64.
        what: a line naming the kernel or op, shapes, strides and dtype.
        repro: Python lines that reproduce the computation.
        rtol, atol: tolerances; when both are 0 and ``dtype`` is given, the defaults
            for that dtype from :data:`TOLERANCES`.
    """
    if rtol == atol == 0.0 and dtype is not None:
        rtol, atol = TOLERANCES.get(dtype, TOLERANCES["float32"])
    got = np.asarray(actual)
    want = np.asarray(expected)
    if got.shape != want.shape:
        fail(what, f"shape mismatch: got {got.shape}, expected {want.shape}", repro)
    got64 = got.astype(np.float64)
    want64 = want.astype(np.float64)
    with np.errstate(all="ignore"):
        ok = np.isclose(got64, want64, rtol=rtol, atol=atol, equal_nan=True)
    if ok.all():
        return
    bad = np.argwhere(~ok)
    with np.errstate(all="ignore"):
        err = np.where(ok, 0.0, np.abs(got64 - want64))
    err = np.where(np.isnan(err), np.inf, err)
    flat_worst = int(np.argmax(err))
    worst = tuple(int(i) for i in np.unravel_index(flat_worst, err.shape)) if err.ndim else ()
    detail = (
        f"{len(bad)} of {want.size} elements differ (rtol={rtol:g}, atol={atol:g}); "
        f"worst at index {worst}: got {float(got64[worst])!r}, "
        f"expected {float(want64[worst])!r}"
    )
    if want.size <= 16:
        detail += f"\n  got:      {np.array2string(got64, precision=6).replace(chr(10), ' ')}"
        detail += f"\n  expected: {np.array2string(want64, precision=6).replace(chr(10), ' ')}"
    fail(what, detail, repro)


def assert_raises(
    call: Callable[[], Any],
    exc: type[BaseException] | tuple[type[BaseException], ...],
    match: str = "",
    *,
    what: str,
    repro: str = "",
) -> BaseException:
    """Fail unless ``call()`` raises ``exc`` with a message matching regex ``match``."""
    names = exc.__name__ if isinstance(exc, type) else " or ".join(e.__name__ for e in exc)
    try:
        call()
    except exc as err:
        if match and not re.search(match, str(err)):
            fail(
                what,
                f"raised {type(err).__name__} as expected, but its message {str(err)!r} "
                f"does not match {match!r}",
                repro,
            )
        return err
    except Exception as err:
        fail(what, f"expected {names}, but it raised {type(err).__name__}: {err}", repro)
    fail(
        what,
        f"expected {names}{f' matching {match!r}' if match else ''}, but nothing was raised",
        repro,
    )
    raise AssertionError("unreachable")
