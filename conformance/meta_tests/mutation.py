"""Mutation testing of the conformance suite: run its kernels area against every
single-bug backend of ``broken_backends.py`` and report which bugs it catches.

Each run collects the kernels area only and selects the broken kernel's tests
(``-k KERNEL``; ``--every-test`` runs all of them). A bug counts as caught when the run
fails, every failure is in a test of the broken kernel (its name is in the test id) and
every failure message names it (``kernel NAME``). ``python conformance/meta_tests/mutation.py`` (or
``nox -s mutation``) prints one line per bug and the mutation score.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import needle_conformance

HERE = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
PLUGIN = ["-p", "broken_backends"]


def bugs() -> dict[str, tuple[str, str]]:
    """Backend name -> (broken kernel, description of the bug)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import broken_backends

    return {name: (bug.kernel, bug.description) for name, bug in broken_backends.BROKEN.items()}


@dataclass
class Outcome:
    """The kernels area against one broken backend."""

    backend: str
    kernel: str
    description: str
    code: int
    table: needle_conformance.Table
    problems: list[str] = field(default_factory=list)

    @property
    def caught(self) -> bool:
        return not self.problems


def judge(backend: str, kernel: str, code: int, table: needle_conformance.Table) -> list[str]:
    """Why this run does not count as catching the bug at kernel level (empty if it does)."""
    problems = []
    if code != 1:
        problems.append(f"suite exit code {code} (expected 1: tests failed)")
    if not table.failures:
        problems.append("no failure recorded: the bug went unnoticed")
    for f in table.failures:
        if f.area != "kernels":
            problems.append(f"{f.test}: failure outside the kernels area")
        elif kernel not in f.test:
            problems.append(f"{f.test}: an unrelated test failed")
        elif f"kernel {kernel}" not in f.message:
            problems.append(f"{f.test}: the failure message does not say 'kernel {kernel}'")
    return problems


def kernel_modules() -> list[str]:
    """The files of the kernels area (collecting only them keeps each run short)."""
    package = Path(needle_conformance.__file__).resolve().parent
    return sorted(str(p) for p in package.glob("test_kernels*.py"))


def run_one(
    backend: str, kernel: str, description: str, profile: str = "ci", every_test: bool = False
) -> Outcome:
    """The kernels area against ``backend``: the tests of ``kernel`` (``-k kernel``), or
    every kernel test with ``every_test`` (slower; then no unrelated test may fail)."""
    with tempfile.TemporaryDirectory(prefix="needle-mutation-") as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            *kernel_modules(),
            f"--needle-backend={backend}",
            f"--needle-profile={profile}",
            f"--needle-report={report}",
            "-p",
            "no:cacheprovider",
            *PLUGIN,
            "-q",
            *([] if every_test else ["-k", kernel]),
        ]
        proc = subprocess.run(
            cmd, env={**os.environ, **ENV}, capture_output=True, text=True, check=False
        )
        table = (
            needle_conformance.Table.from_json(json.loads(report.read_text()))
            if report.exists()
            else needle_conformance.Table()
        )
    outcome = Outcome(backend, kernel, description, proc.returncode, table)
    outcome.problems = judge(backend, kernel, proc.returncode, table)
    if not table.areas:
        outcome.problems.append("no report: " + (proc.stdout + proc.stderr)[-800:])
    return outcome


def run_all(
    names: list[str] | None = None,
    workers: int = 2,
    profile: str = "ci",
    every_test: bool = False,
) -> list[Outcome]:
    """Every (or the named) broken backend, ``workers`` suite runs at a time."""
    table = bugs()
    unknown = sorted(set(names or ()) - set(table))
    if unknown:
        raise ValueError(f"unknown broken backends {unknown}; known: {', '.join(table)}")
    chosen = names or list(table)

    def one(name: str) -> Outcome:
        kernel, description = table[name]
        return run_one(name, kernel, description, profile, every_test)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, chosen))


def report(outcomes: list[Outcome]) -> str:
    lines = []
    width = max(len(o.backend) for o in outcomes)
    for o in outcomes:
        mark = "caught " if o.caught else "MISSED "
        fails = len(o.table.failures)
        lines.append(
            f"{mark} {o.backend.ljust(width)}  {o.kernel:<15} {fails:4d} failing tests  "
            f"({o.description})"
        )
        lines += [f"         - {p}" for p in o.problems[:5]]
    caught = sum(o.caught for o in outcomes)
    lines.append(
        f"mutation score: {caught} of {len(outcomes)} single-bug backends caught at kernel "
        f"level with the kernel named ({100.0 * caught / len(outcomes):.1f}%)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="broken backends to run (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", choices=("ci", "thorough"), default="ci")
    parser.add_argument(
        "--every-test",
        action="store_true",
        help="run every kernel test against each bug, not only the broken kernel's",
    )
    ns = parser.parse_args(argv)
    start = time.perf_counter()
    outcomes = run_all(ns.names or None, ns.workers, ns.profile, ns.every_test)
    print(report(outcomes))
    print(f"({time.perf_counter() - start:.0f} s, {ns.workers} at a time, profile {ns.profile})")
    return 0 if all(o.caught for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
