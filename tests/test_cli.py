"""The ``needle`` command: subcommands are plugins of the ``needle.commands`` group.

A command whose entry point fails must not break ``needle`` (it is reported on stderr
and skipped), and the backend kit's commands say how to install the kit when it is not
there. Fake distributions on ``sys.path`` stand in for third-party packages, as in
``test_plugin_host.py``.
"""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from needle import cli
from plugin_dist import make_distribution

ROOT = Path(__file__).resolve().parent.parent
KIT_HINT = "pip install needle-conformance (or ./conformance)"


def _pyproject(path: Path) -> dict:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    return tomllib.loads(path.read_text())


def test_core_declares_its_commands_as_entry_points() -> None:
    eps = _pyproject(ROOT / "pyproject.toml")["project"]["entry-points"]["needle.commands"]
    assert eps == {
        "backends": "needle.cli:register_backends",
        "train": "needle.training:add_train_parser",
    }


def test_backend_kit_declares_its_commands() -> None:
    project = _pyproject(ROOT / "conformance" / "pyproject.toml")["project"]
    eps = project["entry-points"]["needle.commands"]
    assert set(eps) == {"conformance", "new-backend"}
    for value in eps.values():
        module, _, attr = value.partition(":")
        assert module.startswith("needle_conformance.kit.") and attr.startswith("register_")


def test_core_does_not_import_the_kit() -> None:
    text = (ROOT / "core" / "needle" / "cli.py").read_text()
    assert "import needle_conformance" not in text and "from needle_conformance" not in text
    assert not (ROOT / "core" / "needle" / "scaffold.py").exists()


def test_help_lists_every_command() -> None:
    text = cli.build_parser(stderr=io.StringIO()).format_help()
    for command in ("backends", "train", "conformance", "new-backend"):
        assert command in text, command


def test_backends_command_runs(capsys) -> None:
    assert cli.main(["backends", "--json"]) == 0
    assert '"name": "numpy"' in capsys.readouterr().out


def test_unknown_argument_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["backends", "--nope"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["conformance", "new-backend"])
def test_kit_commands_without_the_kit_say_how_to_install_it(
    command: str, monkeypatch, capsys
) -> None:
    core_only = [ep for ep in cli.command_entry_points() if ep.name in ("backends", "train")]
    monkeypatch.setattr(cli, "command_entry_points", lambda: core_only)
    assert cli.main([command, "numpy", "--all", "-k", "x"]) == 2
    err = capsys.readouterr().err
    assert f"needle {command} is part of the backend kit" in err and KIT_HINT in err


@pytest.mark.skipif(
    importlib.util.find_spec("needle_conformance") is None,
    reason="needle-conformance is not installed (pip install ./conformance)",
)
def test_kit_commands_come_from_the_kit_distribution() -> None:
    eps = {ep.name: ep for ep in metadata.entry_points(group=cli.COMMAND_GROUP)}
    for name in ("conformance", "new-backend"):
        assert name in eps, f"needle-conformance's {name!r} entry point is not installed"
        assert eps[name].dist is not None and eps[name].dist.name == "needle-conformance"


def test_conformance_without_a_backend_is_an_error(capsys) -> None:
    pytest.importorskip("needle_conformance.kit")
    assert cli.main(["conformance"]) == 2
    assert "name a backend or pass --all" in capsys.readouterr().err


# --- broken and third-party commands --------------------------------------------------------
HELLO = """
def register(subparsers):
    p = subparsers.add_parser("hello", help="say hello")
    p.add_argument("--who", default="world")
    p.set_defaults(func=lambda args: print(f"hello {args.who}") or 0)
"""

BROKEN_AT_IMPORT = "raise RuntimeError('boom at import')\n"

BROKEN_REGISTER = """
def register(subparsers):
    raise ValueError("cannot register")
"""

CLASH = """
def register(subparsers):
    subparsers.add_parser("backends", help="claims a taken name")
"""


@pytest.fixture
def command_env(tmp_path: Path) -> dict[str, str]:
    make_distribution(  # entry points that add commands
        tmp_path,
        "needle-extra",
        {"hello": HELLO, "crash": BROKEN_AT_IMPORT, "badreg": BROKEN_REGISTER, "clash": CLASH},
        group="needle.commands",
        attr="register",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEEDLE_")}
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _needle(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "needle.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_third_party_command_runs_next_to_broken_ones(command_env) -> None:
    result = _needle(command_env, "hello", "--who", "needle")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello needle"
    err = result.stderr
    # One line per broken entry point, naming it, its distribution and the error.
    assert "'crash = needle_extra_crash:register' (from needle-extra)" in err
    assert "RuntimeError: boom at import" in err
    assert "'badreg = needle_extra_badreg:register'" in err and "cannot register" in err
    assert "'clash = needle_extra_clash:register'" in err


def test_broken_commands_leave_the_core_commands_working(command_env) -> None:
    result = _needle(command_env, "backends", "--json")
    assert result.returncode == 0, result.stderr
    assert '"name": "numpy"' in result.stdout
    help_text = _needle(command_env, "--help").stdout
    assert "hello" in help_text and "backends" in help_text and "crash" not in help_text
