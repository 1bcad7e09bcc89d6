"""The ``needle`` command: a thin dispatcher over subcommands found as plugins.

Every subcommand is an entry point in the ``needle.commands`` group, the same plugin
idea as the backends. An entry point loads to ``register(subparsers) -> None``, which
adds its sub-parser with ``set_defaults(func=handler)``; ``handler(args) -> int`` runs
the command. The core registers ``backends`` (here) and ``train``
(``needle.training``); the backend kit, the ``needle-conformance`` distribution,
registers ``conformance`` and ``new-backend``. A command whose entry point fails to
load or register is reported on stderr and skipped: it never breaks ``needle``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, TextIO

__all__ = [
    "COMMAND_GROUP",
    "backend_rows",
    "build_parser",
    "command_entry_points",
    "main",
    "register_backends",
]

COMMAND_GROUP = "needle.commands"
"""The entry-point group of ``needle`` subcommands."""

# The core's own commands, as its pyproject.toml declares them. Used only when the
# group does not list them (needle imported from a source tree without its metadata).
_CORE_COMMANDS = {
    "backends": "needle.cli:register_backends",
    "train": "needle.training:add_train_parser",
}

# Commands of the backend kit: without it, `needle NAME` says how to get it.
_KIT_COMMANDS = {
    "conformance": "run the conformance suite against a backend (backend kit, not installed)",
    "new-backend": "generate a new backend distribution (backend kit, not installed)",
}


def kit_hint(command: str) -> str:
    """The message for a backend-kit command when the kit is not installed."""
    return (
        f"needle {command} is part of the backend kit: "
        "pip install needle-conformance (or ./conformance)"
    )


def backend_rows() -> list[dict[str, Any]]:
    """One dict per installed backend and per refused plugin (what ``needle backends`` shows)."""
    from .backends import BackendError, list_backends, plugin_failures

    rows = []
    for b in list_backends().values():
        status = b.status()
        if status.usable:
            try:
                b.kernels(0)  # validates the kernel table
            except BackendError as exc:
                status = b.status()
                status = type(status)(False, str(exc), status.device_count)
        rows.append(
            {
                "name": b.name,
                "version": b.info.version,
                "distribution": b.distribution or b.source,
                "usable": status.usable,
                "reason": status.reason,
                "devices": status.device_count if status.usable else 0,
                "dtypes": list(b.info.dtypes),
                "optional_kernels": list(b.info.optional_kernels),
                "fallback_kernels": list(b.fallback_kernels),
                "contract_version": ".".join(map(str, b.info.contract_version)),
                "description": b.info.description,
            }
        )
    for f in plugin_failures():
        rows.append(
            {
                "name": f.name,
                "version": "",
                "distribution": f.source,
                "usable": False,
                "reason": f.reason,
                "devices": 0,
                "dtypes": [],
                "optional_kernels": [],
                "fallback_kernels": [],
                "contract_version": "",
                "description": "plugin refused",
            }
        )
    return rows


def _format_table(rows: list[dict[str, Any]]) -> str:
    headers = [
        "backend",
        "version",
        "distribution",
        "usable",
        "devices",
        "dtypes",
        "optional kernels",
    ]
    body = []
    notes = []
    for r in rows:
        usable = "yes" if r["usable"] else "no"
        body.append(
            [
                r["name"],
                r["version"],
                r["distribution"],
                usable,
                str(r["devices"]),
                ",".join(r["dtypes"]),
                ",".join(r["optional_kernels"]) or "-",
            ]
        )
        if not r["usable"]:
            notes.append(f"  {r['name']}: {r['reason']}")
        if r["fallback_kernels"]:
            notes.append(
                f"  {r['name']}: falls back to NumPy for {', '.join(r['fallback_kernels'])}"
            )
    widths = [
        max(len(h), *(len(row[i]) for row in body)) if body else len(h)
        for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
    if notes:
        lines += ["", "notes:", *notes]
    return "\n".join(lines)


def _cmd_backends(args: argparse.Namespace) -> int:
    rows = backend_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_format_table(rows) if rows else "no needle backends installed")
    return 0


def register_backends(subparsers: Any) -> None:
    """Register ``needle backends [--json]`` (the core's entry point for it)."""
    p = subparsers.add_parser("backends", help="list installed backends and why any is unusable")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_backends)


def command_entry_points() -> list[metadata.EntryPoint]:
    """The ``needle.commands`` entry points, sorted by name, the core's always included."""
    found = {ep.name: ep for ep in metadata.entry_points(group=COMMAND_GROUP)}
    for name, value in _CORE_COMMANDS.items():
        found.setdefault(name, metadata.EntryPoint(name, value, COMMAND_GROUP))
    return [found[name] for name in sorted(found)]


def _source(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f" (from {dist.name})" if dist is not None else ""


def _kit_stub(command: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        print(kit_hint(command), file=sys.stderr)
        return 2

    return handler


def build_parser(*, stderr: TextIO | None = None) -> argparse.ArgumentParser:
    """The argparse tree of the ``needle`` command, with every registered subcommand.

    A command entry point that fails to load or to register is reported on ``stderr``
    (default ``sys.stderr``), one line naming it and the error, and skipped.
    """
    from . import __version__

    err = sys.stderr if stderr is None else stderr
    parser = argparse.ArgumentParser(prog="needle", description="needle deep-learning framework")
    parser.add_argument("--version", action="version", version=f"needle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for ep in command_entry_points():
        try:
            register = ep.load()
            register(sub)
        except Exception as exc:  # a broken plugin must not break the command
            print(
                f"needle: skipped command {ep.name!r}: entry point "
                f"'{ep.name} = {ep.value}'{_source(ep)} failed: {type(exc).__name__}: {exc}",
                file=err,
            )
    for name, help_text in _KIT_COMMANDS.items():
        if name not in sub.choices:
            p = sub.add_parser(name, help=help_text, add_help=False)
            p.set_defaults(func=_kit_stub(name), accepts_extra=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``needle`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
