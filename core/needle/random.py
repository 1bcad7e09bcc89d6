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

:func:`bernoulli_into` makes ``randb``'s draw on a device instead, through a backend's
``bernoulli_mt19937`` kernel: the same values, and the generator left exactly where
``np.random.rand`` would have left it (dropout masks, eager and replayed).
"""

from __future__ import annotations

import ctypes
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "bernoulli_into",
    "get_state",
    "manual_seed",
    "observing",
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


def observing() -> bool:
    """Whether an observer is set (``needle.compile`` is capturing a step)."""
    return _OBSERVER[0] is not None


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


# --- the draw of randb on a device ------------------------------------------------------
_KEY_WORDS = 624  # MT19937's state: uint32 key[624], then an int pos (NumPy's mt19937_state)
_VIEWS: list[tuple[Any, np.ndarray, Any]] = []  # (bit generator, key view, pos view)


def _global_mt19937() -> Any:
    """The bit generator behind NumPy's global RandomState when it is an MT19937, else
    None (``np.random.set_bit_generator`` can install another)."""
    get = getattr(np.random, "get_bit_generator", None)  # NumPy >= 1.25
    bg = get() if get is not None else np.random.mtrand._rand._bit_generator
    return bg if type(bg) is np.random.MT19937 else None


def _state_views(bg: Any) -> tuple[np.ndarray, Any] | None:
    """The key and pos of MT19937 ``bg`` in place: a NumPy view of its C state's key words
    and a ctypes int over its pos, found through the documented ``bg.ctypes.state_address``
    (so a draw needs no copy of the state; ``bg.state`` copies its 624 words one by one,
    about 50 us each way). None when they do not read what ``bg.state`` holds. Cached per
    bit generator (the cache keeps it, so its memory, alive)."""
    for cached, key, pos in _VIEWS:
        if cached is bg:
            return key, pos
    address = bg.ctypes.state_address
    key = np.ctypeslib.as_array((ctypes.c_uint32 * _KEY_WORDS).from_address(address))
    pos = ctypes.c_int.from_address(address + key.nbytes)
    state = bg.state["state"]
    if pos.value != state["pos"] or not np.array_equal(key, state["key"]):
        return None
    _VIEWS[:] = [(bg, key, pos)]
    return key, pos


def bernoulli_into(kernel: Callable[..., int] | None, out: Any, n: int, p: Any) -> bool:
    """Draw ``randb``'s values for ``n`` elements into the first ``n`` of device buffer
    ``out`` (1.0 where ``np.random.rand(n) <= p``) with ``kernel``, a backend's
    ``bernoulli_mt19937``, advancing NumPy's global generator exactly as that call would.

    Returns False, having drawn nothing, when it cannot: ``kernel`` is None, a draw
    observer is set (a capture records draws as host arrays), ``p`` is not a real number,
    ``out`` is not float32 or float64 or the global generator is not an MT19937; the
    caller then draws on the host.
    """
    if (
        kernel is None
        or _OBSERVER[0] is not None
        or not isinstance(p, numbers.Real)
        or getattr(out, "dtype", None) not in ("float32", "float64")
    ):
        return False
    bg = _global_mt19937()
    if bg is None:
        return False
    with bg.lock:  # the lock RandomState's draws take: no other thread draws meanwhile
        views = _state_views(bg)
        if views is not None:
            key, pos = views
            pos.value = kernel(key, pos.value, float(p), out, n)
        else:  # copy the state out and back (the Gaussian cache lives in RandomState)
            state = bg.state["state"]
            new_pos = kernel(state["key"], state["pos"], float(p), out, n)
            bg.state = {"bit_generator": "MT19937", "state": {"key": state["key"], "pos": new_pos}}
    return True
