"""Plain records a backend plugin returns to describe itself."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class BackendInfo:
    """What a backend says about itself (see ``needle_backend_info``).

    Attributes:
        name: the backend's name, used in ``device("name")`` and ``NEEDLE_BACKEND``.
        version: the backend's own version string.
        contract_version: the ``(major, minor)`` contract version it implements.
        dtypes: the dtypes it supports; must include ``"float32"``.
        optional_kernels: names from ``OPTIONAL_KERNELS`` that it provides.
        description: one line shown by ``needle backends``.
    """

    name: str
    version: str
    contract_version: tuple[int, int]
    dtypes: tuple[str, ...] = ("float32", "float64")
    optional_kernels: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class BackendStatus:
    """Whether a backend can run here (see ``needle_backend_status``)."""

    usable: bool
    reason: str = ""
    device_count: int = field(default=1)
