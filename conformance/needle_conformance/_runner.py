"""Running the suite from Python or the ``needle conformance`` command."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._table import Table, summary


def pytest_args(
    backend: str, xfail: str | os.PathLike[str] | None = None, extra_args: Sequence[str] = ()
) -> list[str]:
    """The pytest command-line arguments that run the suite against ``backend``."""
    args = [
        "--pyargs",
        "needle_conformance",
        f"--needle-backend={backend}",
        "-p",
        "no:cacheprovider",
    ]
    if xfail is not None:
        args.append(f"--needle-xfail={os.fspath(xfail)}")
    return [*args, *extra_args]


def run(
    backend: str,
    xfail: str | os.PathLike[str] | None = None,
    extra_args: Sequence[str] = (),
    *,
    env: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> tuple[int, Table]:
    """Run the suite against ``backend`` in a fresh Python process.

    Args:
        backend: the backend's name, as in ``needle.device(name)``.
        xfail: a known-gaps file (see the README), or None.
        extra_args: more pytest arguments (``-k``, ``-m kernels``, ``--needle-profile``...).
        env: extra environment variables for the child process.
        quiet: capture pytest's output instead of letting it through.

    Returns:
        (pytest's exit code, the :class:`Table` of counts by area with the failures).
    """
    with tempfile.TemporaryDirectory(prefix="needle-conformance-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            *pytest_args(backend, xfail, extra_args),
            f"--needle-report={report}",
        ]
        child_env = {**os.environ, **(env or {})}
        proc = subprocess.run(cmd, env=child_env, capture_output=quiet, text=True, check=False)
        table = Table.from_json(json.loads(report.read_text())) if report.exists() else Table()
    if quiet and proc.returncode not in (0, 1) and not table.areas:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
    return proc.returncode, table


def main(argv: Sequence[str] | None = None) -> int:
    """``needle conformance NAME [--xfail FILE] [--profile P] [--dtypes L] [PYTEST ARGS]``.

    Options this function does not know (``-k EXPR``, ``-m AREA``, ``-x``...) and
    everything after ``--`` are passed to pytest.

    Runs the suite, prints the per-area table, and returns pytest's exit code.
    """
    parser = argparse.ArgumentParser(
        prog="needle conformance",
        description="Run the needle conformance suite against one installed backend; "
        "other options (and anything after --) go to pytest.",
    )
    parser.add_argument(
        "backend",
        nargs="?",
        default=os.environ.get("NEEDLE_BACKEND", "").strip() or "numpy",
        help="backend name (default: $NEEDLE_BACKEND, else numpy)",
    )
    parser.add_argument("--xfail", metavar="FILE", help="known-gaps file")
    parser.add_argument(
        "--profile",
        choices=("ci", "thorough"),
        default="ci",
        help="Hypothesis profile (default: ci)",
    )
    parser.add_argument("--dtypes", metavar="LIST", help="comma-separated dtypes")
    argv = list(sys.argv[1:] if argv is None else argv)
    tail = argv[argv.index("--") + 1 :] if "--" in argv else []
    head = argv[: argv.index("--")] if "--" in argv else argv
    ns, unknown = parser.parse_known_args(head)  # unknown options go to pytest too
    extra = ["-q", f"--needle-profile={ns.profile}", *unknown, *tail]
    if ns.dtypes:
        extra.append(f"--needle-dtypes={ns.dtypes}")
    code, table = run(ns.backend, ns.xfail, extra)
    print(f"\nneedle conformance: backend {ns.backend}")
    print(summary(table))
    return int(code)
