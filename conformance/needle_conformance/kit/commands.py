"""The kit's subcommands of ``needle``, registered through ``needle.commands`` entry points.

Each ``register_*`` function has the shape the ``needle`` command expects of an entry
point in that group: ``register(subparsers) -> None`` adds a sub-parser whose default
``func`` is the handler, ``handler(args) -> int``. This module stays light (it is
imported whenever ``needle`` builds its parser); the suite and the generator are
imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["register_conformance", "register_new_backend", "run_conformance", "run_new_backend"]


# --- needle conformance ------------------------------------------------------------------
def register_conformance(subparsers: Any) -> None:
    """Register ``needle conformance [NAME | --all] [--xfail FILE] [PYTEST ARGS]``."""
    p = subparsers.add_parser("conformance", help="run the conformance suite against a backend")
    p.add_argument("backend", nargs="?", help="backend name, e.g. numpy or cpp")
    p.add_argument("--all", action="store_true", help="every usable backend, one after another")
    p.add_argument("--xfail", help="file listing the backend's known gaps")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    p.set_defaults(func=run_conformance)


def run_conformance(args: argparse.Namespace) -> int:
    """Handle ``needle conformance``: one backend, or every usable one with ``--all``."""
    from needle.cli import backend_rows

    from .._runner import main

    extra = [*(["--xfail", args.xfail] if args.xfail else []), *args.pytest_args]
    if not args.all:
        if not args.backend:
            print("needle conformance: name a backend or pass --all", file=sys.stderr)
            return 2
        return int(main([args.backend, *extra]))
    worst = 0
    for row in backend_rows():
        if not row["usable"]:
            print(f"needle conformance: {row['name']} skipped ({row['reason']})")
            continue
        print(f"needle conformance: running the suite against {row['name']}")
        worst = max(worst, int(main([row["name"], *extra])))
    return worst


# --- needle new-backend ------------------------------------------------------------------
def register_new_backend(subparsers: Any) -> None:
    """Register ``needle new-backend NAME [--path DIR] [--force]``."""
    p = subparsers.add_parser(
        "new-backend",
        help="generate a new backend distribution to start from",
        description="Generate needle-NAME, an installable backend whose kernels start as "
        "NumPy code, with a conformance test. See docs/writing-a-backend.md.",
    )
    p.add_argument("name", metavar="NAME", help="the backend name, e.g. 'mybackend'")
    p.add_argument(
        "--path", metavar="DIR", default=None, help="where to create it (default: ./needle-NAME)"
    )
    p.add_argument(
        "--force", action="store_true", help="write into a non-empty folder, overwriting"
    )
    p.set_defaults(func=run_new_backend)


def run_new_backend(args: argparse.Namespace) -> int:
    """Handle ``needle new-backend``: create the backend and print the next steps."""
    from .scaffold import create_backend

    path = args.path or f"needle-{args.name.replace('_', '-')}"
    try:
        root = create_backend(args.name, path, force=getattr(args, "force", False))
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"Created backend {args.name!r} in {root}\n"
        "Next steps:\n"
        f"  pip install -e {root}\n"
        "  needle backends\n"
        f"  pytest {root / 'tests'}"
    )
    return 0
