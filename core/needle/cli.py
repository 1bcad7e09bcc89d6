"""The ``needle`` command: ``needle backends``, ``needle train``, ``needle conformance``...

Subcommands that live in other modules register themselves through an
``add_*_parser(subparsers)`` function, so this file stays a thin dispatcher.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Sequence
from typing import Any


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


def _cmd_conformance(args: argparse.Namespace) -> int:
    try:
        import needle_conformance
    except ImportError:
        print(
            "needle conformance: the suite is not installed (pip install ./conformance)",
            file=sys.stderr,
        )
        return 2
    extra = [*(["--xfail", args.xfail] if args.xfail else []), *args.pytest_args]
    if not args.all:
        if not args.backend:
            print("needle conformance: name a backend or pass --all", file=sys.stderr)
            return 2
        return int(needle_conformance.main([args.backend, *extra]))
    worst = 0
    for row in backend_rows():
        if not row["usable"]:
            print(f"needle conformance: {row['name']} skipped ({row['reason']})")
            continue
        print(f"needle conformance: running the suite against {row['name']}")
        worst = max(worst, int(needle_conformance.main([row["name"], *extra])))
    return worst


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of the ``needle`` command."""
    from . import __version__

    parser = argparse.ArgumentParser(prog="needle", description="needle deep-learning framework")
    parser.add_argument("--version", action="version", version=f"needle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backends", help="list installed backends and why any is unusable")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_backends)

    p = sub.add_parser("conformance", help="run the conformance suite against a backend")
    p.add_argument("backend", nargs="?", help="backend name, e.g. numpy or cpp")
    p.add_argument("--all", action="store_true", help="every usable backend, one after another")
    p.add_argument("--xfail", help="file listing the backend's known gaps")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    p.set_defaults(func=_cmd_conformance)

    for module, fn in (("training", "add_train_parser"), ("scaffold", "add_new_backend_parser")):
        if importlib.util.find_spec(f"needle.{module}") is not None:
            getattr(importlib.import_module(f"needle.{module}"), fn)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``needle`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
