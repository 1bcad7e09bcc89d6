"""A fake installed distribution with ``needle.backends`` entry points, and Python run in
a subprocess that sees it, for the plugin host and command tests (``test_plugin_host``,
``test_reliability_plugins``, ``test_cli``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def make_distribution(
    root: Path,
    dist: str,
    plugins: dict[str, str],
    group: str = "needle.backends",
    attr: str = "",
) -> None:
    """Install a fake distribution into ``root`` (a sys.path entry) with entry points in
    ``group``: one module per entry, with the given source; ``attr`` (e.g. ``"register"``)
    makes each entry point at ``module:attr`` instead of the module."""
    info = root / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    lines = [f"[{group}]"]
    for ep_name, source in plugins.items():
        module = f"{dist.replace('-', '_')}_{ep_name}"
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        lines.append(f"{ep_name} = {module}:{attr}" if attr else f"{ep_name} = {module}")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def run_py(
    code: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -c code`` in a subprocess with environment ``env``."""
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout
    )
