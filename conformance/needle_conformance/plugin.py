"""The pytest plugin (entry point ``pytest11``): options, fixtures, known gaps, the table.

Loaded in every pytest run of an environment where needle-conformance is installed, so
everything here is inert unless conformance tests were collected.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from . import _state
from ._table import AREAS, Table, area_of, is_conformance_item, stable_id, summary


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("needle-conformance", "needle backend conformance suite")
    group.addoption(
        "--needle-backend",
        default=None,
        metavar="NAME",
        help="backend under test (default: $NEEDLE_BACKEND, else numpy)",
    )
    group.addoption(
        "--needle-xfail",
        default=None,
        metavar="FILE",
        help="known gaps: test-id patterns, one a line (or a TOML file); "
        "matching tests are xfail(strict=True)",
    )
    group.addoption(
        "--needle-dtypes",
        default=None,
        metavar="LIST",
        help="comma-separated dtypes (default: float32,float64 where supported)",
    )
    group.addoption(
        "--needle-profile",
        default="ci",
        choices=_state.PROFILES,
        help="Hypothesis profile: ci (derandomized, few examples) or thorough",
    )
    group.addoption(
        "--needle-report",
        default=None,
        metavar="FILE",
        help="write the per-area counts and failures as JSON to FILE",
    )


def pytest_configure(config: pytest.Config) -> None:
    for area in AREAS:
        config.addinivalue_line("markers", f"{area}: needle conformance area '{area}'")
    choices = _state.CHOICES
    backend = config.getoption("--needle-backend")
    if backend:
        choices.backend = backend
    dtypes = config.getoption("--needle-dtypes")
    if dtypes:
        choices.dtypes = tuple(d.strip() for d in dtypes.split(",") if d.strip())
    choices.profile = config.getoption("--needle-profile")
    global _current_table
    _current_table = config.stash[_TABLE] = Table()
    path = config.getoption("--needle-xfail")
    config.stash[_XFAIL] = load_xfail_file(path) if path else []


_TABLE = pytest.StashKey["Table"]()
_XFAIL = pytest.StashKey["list[tuple[str, str]]"]()


def load_xfail_file(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Read known gaps as (pattern, reason) pairs.

    Text format: one fnmatch pattern a line, an optional reason after ``#``; blank lines
    and lines starting with ``#`` are ignored. TOML format (``.toml``): an array of tables
    ``[[xfail]]`` with keys ``pattern`` and ``reason``.
    """
    p = Path(path)
    if not p.is_file():
        raise pytest.UsageError(f"--needle-xfail: no such file {str(p)!r}")
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
            entries = [
                (str(e["pattern"]), str(e.get("reason", "known gap")))
                for e in data.get("xfail", [])
            ]
        except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
            raise pytest.UsageError(
                f"--needle-xfail {p}: not a valid xfail TOML file: {exc}"
            ) from None
        return entries
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, reason = line.partition("#")
        entries.append((pattern.strip(), reason.strip() or "known gap"))
    return entries


def pattern_matches(pattern: str, test_id: str) -> bool:
    """Whether ``test_id`` matches ``pattern``: ``*`` is any text, ``?`` one character,
    everything else (brackets included) is literal."""
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, test_id) is not None


def _xfail_reason(item: pytest.Item, entries: list[tuple[str, str]]) -> str | None:
    sid = stable_id(item)
    for pattern, reason in entries:
        if pattern_matches(pattern, sid) or pattern_matches(pattern, item.nodeid):
            return f"{reason} (--needle-xfail pattern {pattern!r})"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    entries = config.stash.get(_XFAIL, [])
    slots = [i for i, item in enumerate(items) if is_conformance_item(item)]
    if slots:
        _state.check_backend()
        # The kernels area runs first, then the areas in AREAS order (a stable sort): a
        # kernel defect is diagnosed at kernel level before any op test trips over it.
        ordered = sorted((items[i] for i in slots), key=lambda it: AREAS.index(area_of(it)))
        for i, item in zip(slots, ordered):
            items[i] = item
    for item in items:
        if not is_conformance_item(item):
            continue
        item.add_marker(getattr(pytest.mark, area_of(item)))
        reason = _xfail_reason(item, entries) if entries else None
        if reason:
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))


# --- attribution: "kernel X already failed", and tests that ran through NEEDLE_FALLBACK --
_FAILED_KERNELS: dict[str, str] = {}
"""Kernel name -> the stable id of the first kernels-area test that failed on it."""
_USED = pytest.StashKey["set[str]"]()
_KERNEL_IN_MESSAGE = re.compile(r"\bkernel (\w+)")


def _kernel_of(item: pytest.Item, text: str) -> str | None:
    """The kernel a failed kernels-area test is about: named in its message, else its id."""
    from needle.backends import KERNELS

    m = _KERNEL_IN_MESSAGE.search(text)
    if m and m.group(1) in KERNELS:
        return m.group(1)
    found = [k for k in KERNELS if re.search(rf"(?<![a-z_]){k}(?![a-z])", item.name)]
    return max(found, key=len) if found else None


def _watched_kernels() -> tuple[Any, set[str], set[str]]:
    """(device, kernels that failed, kernels running through NEEDLE_FALLBACK)."""
    try:
        dev = _state.device()
        fallback = set(getattr(dev.backend, "fallback_kernels", ()) or ())
    except Exception:
        return None, set(), set()
    return dev, set(_FAILED_KERNELS), fallback


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """Outside the kernels area, note which failed or fallback kernels a test calls."""
    if not is_conformance_item(item) or area_of(item) == "kernels":
        return (yield)
    dev, failed, fallback = _watched_kernels()
    watch = failed | fallback
    if dev is None or not watch:
        return (yield)
    used: set[str] = set()
    item.stash[_USED] = used
    installed = {}
    for name in watch:
        try:
            real = getattr(dev, name)
        except Exception:
            continue

        def recorder(*args: Any, _name: str = name, _real: Any = real, **kw: Any) -> Any:
            used.add(_name)
            return _real(*args, **kw)

        dev.__dict__[name] = installed[name] = recorder
    try:
        return (yield)
    finally:
        for name, fn in installed.items():
            if dev.__dict__.get(name) is fn:
                del dev.__dict__[name]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    if call.when != "call" or not is_conformance_item(item):
        return report
    if area_of(item) == "kernels":
        if report.failed:
            kernel = _kernel_of(item, report.longreprtext)
            if kernel:
                _FAILED_KERNELS.setdefault(kernel, stable_id(item))
        return report
    used = item.stash.get(_USED, set())
    broken = sorted(used & set(_FAILED_KERNELS))
    if report.failed and broken:
        first = "; ".join(f"kernel {k} already failed ({_FAILED_KERNELS[k]})" for k in broken)
        report.longrepr = (
            f"{first}. This test calls it, so this failure is most likely that kernel's "
            f"defect, not a second one; fix the kernel first.\n\n{report.longreprtext}"
        )
    fallback = sorted(used & _watched_kernels()[2])
    if report.passed and fallback:
        report.user_properties.append(("needle_fallback", ",".join(fallback)))
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    table = _current_table
    if table is not None:
        table.record(report)


_current_table: Table | None = None  # the hook above has no config to reach the stash


def pytest_report_header(config: pytest.Config) -> str | None:
    # The plugin loads in every pytest run of the environment: a run that is not the
    # suite's (a backend's own tests, which start the suite in a child) gets no line, so
    # the header never names a default backend that nothing tests.
    args = " ".join(map(str, config.invocation_params.args))
    if not config.getoption("--needle-backend") and "needle_conformance" not in args:
        return None
    c = _state.CHOICES
    return f"needle conformance: backend {c.backend!r}, profile {c.profile!r}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    table = config.stash.get(_TABLE, None)
    if table is None or not table.areas:
        return
    path = config.getoption("--needle-report")
    if path:
        Path(path).write_text(json.dumps(table.to_json(), indent=1), encoding="utf-8")
        return
    terminalreporter.write_sep("=", f"needle conformance: backend {_state.CHOICES.backend}")
    terminalreporter.write_line(summary(table))


# --- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def needle_backend_name() -> str:
    """The name of the backend under test."""
    return _state.CHOICES.backend


@pytest.fixture(scope="session")
def needle_device(needle_backend_name: str) -> Any:
    """The device under test; an error naming what is installed when it cannot run."""
    import needle

    try:
        dev = needle.device(needle_backend_name)
        dev.kernels  # loads and validates the kernel table  # noqa: B018
    except Exception as exc:
        pytest.fail(
            f"needle backend {needle_backend_name!r} cannot be tested: {exc}", pytrace=False
        )
    return dev


@pytest.fixture(scope="session")
def needle_kernels(needle_device: Any) -> Any:
    """The backend's kernel table (``device.kernels``)."""
    return needle_device.kernels
