"""needle's random numbers: NumPy's global generator, drawn with the course's calls.

Every random draw in needle (initialisers, dropout, DataLoader shuffling, image
transforms, ``Device.rand``/``Device.randn``) goes through the helpers below, and they
call NumPy's global ``RandomState`` exactly as the course's needle does:

=====================  ===============================================
``rand(*shape)``       ``np.random.rand(*shape)``
``randn(*shape)``      ``np.random.randn(*shape)``
``randb(*shape, p)``   ``np.random.rand(*shape) <= p``
``permutation(n)``     ``np.random.permutation(n)``
``randint(lo, hi, s)`` ``np.random.randint(low=lo, high=hi, size=s)``
=====================  ===============================================

So ``np.random.seed(s)`` before building a model reproduces the course's numbers, and
``needle.manual_seed(s)`` is the same call. :func:`get_state` and :func:`set_state`
save and restore the generator bit for bit (checkpoints use them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "get_state",
    "manual_seed",
    "permutation",
    "rand",
    "randb",
    "randint",
    "randn",
    "set_observer",
    "set_state",
]


def manual_seed(seed: int) -> None:
    """Seed NumPy's global generator (``np.random.seed(seed)``), which needle draws from.

    Raises:
        ValueError: ``seed`` is not an integer in ``[0, 2**32 - 1]``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) <= 2**32 - 1:
        raise ValueError(f"manual_seed: seed must lie in [0, 2**32 - 1], got {seed}")
    np.random.seed(int(seed))


def get_state() -> dict[str, Any]:
    """The global generator's full state (``np.random.get_state(legacy=False)``)."""
    return np.random.get_state(legacy=False)  # type: ignore[no-any-return]


def set_state(state: Any) -> None:
    """Restore a state from :func:`get_state` (or ``np.random.get_state()``)."""
    np.random.set_state(state)


_OBSERVER: list[Callable[[str, tuple[Any, ...], dict[str, Any], Any], None] | None] = [None]


def set_observer(fn: Callable[[str, tuple[Any, ...], dict[str, Any], Any], None] | None) -> None:
    """Have ``fn(name, args, kwargs, result)`` called after every draw (or stop, with None).

    ``needle.compile`` uses it to record draws, so that a replayed step repeats them.
    """
    _OBSERVER[0] = fn


def _seen(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> Any:
    observer = _OBSERVER[0]
    if observer is not None:
        observer(name, args, kwargs, out)
    return out


def rand(*shape: int) -> Any:
    """Uniform samples in [0, 1): ``np.random.rand(*shape)`` (a float when no shape)."""
    return _seen("rand", shape, {}, np.random.rand(*shape))


def randn(*shape: int) -> Any:
    """Standard normal samples: ``np.random.randn(*shape)``."""
    return _seen("randn", shape, {}, np.random.randn(*shape))


def randb(*shape: int, p: float = 0.5) -> Any:
    """Booleans, True with probability ``p``: ``np.random.rand(*shape) <= p``."""
    return _seen("randb", shape, {"p": p}, np.random.rand(*shape) <= p)


def permutation(n: int) -> np.ndarray:
    """A random order of ``range(n)``: ``np.random.permutation(n)``."""
    return _seen("permutation", (n,), {}, np.random.permutation(n))  # type: ignore[no-any-return]


def randint(low: int, high: int | None = None, size: Any = None) -> Any:
    """Integers in [low, high): ``np.random.randint(low=low, high=high, size=size)``."""
    out = np.random.randint(low=low, high=high, size=size)
    return _seen("randint", (low, high, size), {}, out)
