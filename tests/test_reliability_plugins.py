"""The plugin host survives any plugin: malformed info, sys.exit, hangs, name clashes.

Each scenario installs fake distributions (a ``*.dist-info`` folder with entry points)
on a temporary ``sys.path`` entry and runs needle in a subprocess, so a plugin that
exits or hangs can only end that subprocess, and the timeout turns a hang into a failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from needle.backends import BackendInfo, BackendStatus
from needle.backends._registry import Registry, info_problem, status_problem, strict_plugins
from plugin_dist import make_distribution, run_py

PLUGIN = """
from needle.backends import BackendInfo, BackendStatus, hookimpl
{prelude}

@hookimpl
def needle_backend_info():
    {info_body}
    return BackendInfo(name={name!r}, version="1", contract_version=(1, 0), {info_extra})

@hookimpl
def needle_backend_status():
    {status_body}
    return BackendStatus({usable}, "", 1)

@hookimpl
def needle_backend_load(index):
    {load_body}
    from needle_numpy import kernels
    return kernels
"""


def plugin(name: str, **parts: str) -> str:
    fields = {
        "prelude": "",
        "info_body": "pass",
        "info_extra": "",
        "status_body": "pass",
        "usable": "True",
        "load_body": "pass",
    }
    fields.update(parts)
    return PLUGIN.format(name=name, **fields)


def env_for(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NEEDLE_STRICT_PLUGINS", None)
    env["NEEDLE_BACKEND"] = "numpy"  # no test here needs the C++ build
    env.update(extra)
    return env


MAKE_TENSOR = (
    "import needle as ndl\n"
    "x = ndl.Tensor([1.0, 2.0], device='numpy')\n"
    "print('tensor', (x * 3.0).numpy().tolist())\n"
)
LIST_JSON = "from needle.cli import main; main(['backends', '--json'])"

MALFORMED = {
    "cvempty": plugin("cvempty", info_body="return BackendInfo('cvempty', '1', ())"),
    "cvnone": plugin("cvnone", info_body="return BackendInfo('cvnone', '1', None)"),
    "name123": plugin("name123", info_body="return BackendInfo(123, '1', (1, 0))"),
    "dtypesnone": plugin("dtypesnone", info_extra="dtypes=None"),
    "kernelsstr": plugin("kernelsstr", info_extra="optional_kernels=5"),
    "notinfo": plugin("notinfo", info_body="return {'name': 'notinfo'}"),
    "usableno": plugin("usableno", usable='"no"'),
    "countneg": plugin("countneg", status_body="return BackendStatus(True, '', -1)"),
    "exitimport": "import sys\nsys.exit(3)\n",
    "exitinfo": plugin("exitinfo", info_body="raise SystemExit(4)"),
    "exitstatus": plugin("exitstatus", status_body="raise SystemExit(5)"),
    "exitload": plugin("exitload", load_body="import sys; sys.exit(6)"),
    "good": plugin("good"),
}


@pytest.fixture
def malformed_env(tmp_path: Path) -> dict[str, str]:
    make_distribution(tmp_path, "needle-malformed", MALFORMED)
    return env_for(tmp_path)


def test_malformed_plugins_leave_every_other_backend_usable(malformed_env) -> None:
    out = run_py(
        MAKE_TENSOR + "y = ndl.Tensor([1.0], device='good'); print('good', y.numpy())\n"
        "from needle.backends import plugin_failures\n"
        "print(len(plugin_failures()))\n",
        malformed_env,
    )
    assert out.returncode == 0, out.stderr
    assert "tensor [3.0, 6.0]" in out.stdout and "good [1.]" in out.stdout


def test_needle_backends_lists_each_malformed_plugin_with_its_reason(malformed_env) -> None:
    out = run_py(LIST_JSON, malformed_env)
    assert out.returncode == 0, out.stderr
    rows: dict[str, list[dict]] = {}
    for row in json.loads(out.stdout):
        rows.setdefault(row["name"], []).append(row)
    reason = {name: " ".join(r["reason"] for r in rs) for name, rs in rows.items()}
    assert "contract_version must be a (major, minor) pair of ints, got ()" in reason["cvempty"]
    assert "got None" in reason["cvnone"]
    assert "invalid backend name 123" in reason["name123"]
    assert "dtypes must be a tuple of str, got None" in reason["dtypesnone"]
    assert "optional_kernels must be a tuple of str" in reason["kernelsstr"]
    assert "returned dict, not BackendInfo" in reason["notinfo"]
    assert "usable must be a bool, got 'no'" in reason["usableno"]
    assert not any(r["usable"] for r in rows["usableno"])
    assert "device_count must be an int >= 0" in reason["countneg"]
    assert "sys.exit(3)" in reason["exitimport"]
    assert "sys.exit(4)" in reason["exitinfo"]
    assert "sys.exit(5)" in reason["exitstatus"]
    assert rows["good"][0]["usable"] and rows["numpy"][0]["usable"]


def test_sys_exit_in_load_is_reported_not_obeyed(malformed_env) -> None:
    code = (
        "import needle as ndl\n"
        "try:\n"
        "    ndl.Tensor([1.0], device='exitload')\n"
        "except ndl.backends.PluginError as e:\n"
        "    print('refused:', e)\n"
        "print(ndl.device('exitload').enabled(), ndl.Tensor([2.0], device='numpy').numpy())\n"
    )
    out = run_py(code, malformed_env)
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "sys.exit(6)" in out.stdout
    assert "False [2.]" in out.stdout


def test_a_plugin_that_hangs_at_import_does_not_stop_another_backend(tmp_path: Path) -> None:
    make_distribution(tmp_path, "needle-hangs", {"hangs": "import time\ntime.sleep(3600)\n"})
    env = env_for(tmp_path)
    out = run_py(MAKE_TENSOR, env, timeout=240)  # a hang raises TimeoutExpired
    assert out.returncode == 0, out.stderr
    assert "tensor [3.0, 6.0]" in out.stdout
    env.pop("NEEDLE_BACKEND")  # the default device is chosen by name too
    out = run_py("import needle as ndl; print(ndl.Tensor([1.0]).device.name)", env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("cpp", "numpy")


def test_a_stray_plugin_cannot_take_an_in_tree_name(tmp_path: Path) -> None:
    make_distribution(tmp_path, "needle-stray", {"cpp": plugin("cpp"), "numpy": plugin("numpy")})
    code = (
        "from needle.backends import REGISTRY, plugin_failures\n"
        "print(REGISTRY.find('cpp').distribution, REGISTRY.find('numpy').distribution)\n"
        "for f in plugin_failures(): print('failure', f.name, f.reason)\n"
    )
    out = run_py(code, env_for(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "needle-cpp needle-core"
    assert "failure cpp name 'cpp' is already taken by the in-tree distribution needle-cpp" in (
        out.stdout
    )
    assert "needle-stray" in out.stdout


def test_a_name_clash_between_two_stray_distributions_is_reported_for_both(
    tmp_path: Path,
) -> None:
    make_distribution(tmp_path, "needle-one", {"clash": plugin("clash")})
    make_distribution(tmp_path, "needle-two", {"clash": plugin("clash")})
    code = (
        "from needle.backends import REGISTRY, plugin_failures\n"
        "print(REGISTRY.find('clash'))\n"
        "for f in plugin_failures(): print('failure', f.name, f.reason)\n"
    )
    out = run_py(code, env_for(tmp_path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "None"
    clash = [line for line in lines if line.startswith("failure clash")]
    assert len(clash) == 2
    assert all("needle-one" in line and "needle-two" in line for line in clash)


@pytest.mark.parametrize("value", ["false", "0", "no", "FALSE", ""])
def test_strict_plugins_off_values(monkeypatch, value: str) -> None:
    monkeypatch.setenv("NEEDLE_STRICT_PLUGINS", value)
    assert strict_plugins() is False


@pytest.mark.parametrize("value", ["1", "true", "yes", "Yes"])
def test_strict_plugins_on_values(monkeypatch, value: str) -> None:
    monkeypatch.setenv("NEEDLE_STRICT_PLUGINS", value)
    assert strict_plugins() is True


def test_strict_plugins_rejects_other_values(monkeypatch) -> None:
    monkeypatch.setenv("NEEDLE_STRICT_PLUGINS", "maybe")
    with pytest.raises(ValueError, match=r"NEEDLE_STRICT_PLUGINS=.maybe.*1, true or yes"):
        strict_plugins()


def test_strict_false_does_not_turn_strict_mode_on(tmp_path: Path) -> None:
    make_distribution(tmp_path, "needle-broken", {"raises": "raise RuntimeError('boom')\n"})
    out = run_py(MAKE_TENSOR, env_for(tmp_path, NEEDLE_STRICT_PLUGINS="false"))
    assert out.returncode == 0, out.stderr
    out = run_py(MAKE_TENSOR, env_for(tmp_path, NEEDLE_STRICT_PLUGINS="yes"))
    assert out.returncode != 0 and "PluginError" in out.stderr and "boom" in out.stderr


def test_discovery_that_fails_is_retried_from_a_clean_state(monkeypatch) -> None:
    registry = Registry()
    monkeypatch.setenv("NEEDLE_STRICT_PLUGINS", "bogus")
    with pytest.raises(ValueError, match="NEEDLE_STRICT_PLUGINS"):
        registry.find("numpy")
    monkeypatch.delenv("NEEDLE_STRICT_PLUGINS")
    backend = registry.find("numpy")
    assert backend is not None and backend.distribution == "needle-core"
    assert "numpy" in registry.backends()


def test_choosing_a_device_imports_only_its_plugin() -> None:
    registry = Registry()
    registry.find("numpy")
    assert set(registry._backends) == {"numpy"}
    assert "numpy" not in registry._pending and registry._pending  # the others wait


def test_info_and_status_checks_by_type() -> None:
    assert info_problem(BackendInfo("ok", "1", (1, 0))) is None
    assert "pair of ints" in info_problem(BackendInfo("x", "1", (True, 0)))
    assert "version must be a str" in info_problem(BackendInfo("x", 1, (1, 0)))  # type: ignore[arg-type]
    assert "description must be a str" in info_problem(
        BackendInfo("x", "1", (1, 0), description=None)  # type: ignore[arg-type]
    )
    assert status_problem(BackendStatus(True, "", 1)) is None
    assert "usable must be a bool" in status_problem(BackendStatus(1, "", 1))  # type: ignore[arg-type]
    assert "reason must be a str" in status_problem(BackendStatus(False, None, 0))  # type: ignore[arg-type]
    assert "device_count" in status_problem(BackendStatus(True, "", True))
