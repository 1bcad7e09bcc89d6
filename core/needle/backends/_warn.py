"""One-time warnings shared by the plugin host's modules (imports nothing of the host)."""

from __future__ import annotations

import warnings

_SEEN: set[str] = set()


def warn_once(message: str) -> None:
    """Emit ``message`` as a RuntimeWarning the first time only."""
    if message not in _SEEN:
        _SEEN.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
