"""The plugin host: discovery through entry points, validation, failures, selection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import needle as ndl
import pytest
from needle.backends import (
    BackendError,
    BackendInfo,
    BackendStatus,
    PluginError,
    hookimpl,
    list_backends,
    plugin_failures,
    register_plugin,
    unregister_plugin,
)

GOOD_PLUGIN = """
import needle
from needle.backends import BackendInfo, BackendStatus, hookimpl

@hookimpl
def needle_backend_info():
    return BackendInfo(name={name!r}, version="0.0.1", contract_version={version!r})

@hookimpl
def needle_backend_status():
    return BackendStatus(True, "", 1)

@hookimpl
def needle_backend_load(index):
    from needle_numpy import kernels as table  # test plugins borrow the reference kernels
    class Partial:
        def __getattr__(self, k):
            if k in {drop!r}:
                raise AttributeError(k)
            return getattr(table, k)
    return Partial()
"""


def make_distribution(root: Path, dist: str, plugins: dict[str, str]) -> None:
    """Install a fake distribution into ``root`` (a sys.path entry) with entry points."""
    info = root / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    lines = ["[needle.backends]"]
    for ep_name, source in plugins.items():
        module = f"{dist.replace('-', '_')}_{ep_name}"
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        lines.append(f"{ep_name} = {module}")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose sys.path holds four broken plugins and one good one."""
    make_distribution(
        tmp_path,
        "needle-broken",
        {
            "raises": "raise RuntimeError('boom at import')\n",
            "oldcontract": GOOD_PLUGIN.format(name="oldcontract", version=(0, 9), drop=()),
            "partial": GOOD_PLUGIN.format(name="partial", version=(1, 0), drop=("ewise_mul",)),
            "numpy": GOOD_PLUGIN.format(name="numpy", version=(1, 0), drop=()),
            "misnamed": GOOD_PLUGIN.format(name="other", version=(1, 0), drop=()),
            "good": GOOD_PLUGIN.format(name="good", version=(1, 0), drop=()),
        },
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("NEEDLE_STRICT_PLUGINS", None)
    env.pop("NEEDLE_BACKEND", None)
    return env


def run_py(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )


def test_broken_plugins_are_listed_with_reasons(plugin_env) -> None:
    out = run_py("from needle.cli import main; main(['backends', '--json'])", plugin_env)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert "boom at import" in rows["raises"]["reason"]
    assert "0.9" in rows["oldcontract"]["reason"] and "1.0" in rows["oldcontract"]["reason"]
    assert "ewise_mul" in rows["partial"]["reason"] and not rows["partial"]["usable"]
    dupes = [r for r in json.loads(out.stdout) if r["name"] == "numpy"]
    assert any("already taken" in r["reason"] for r in dupes)
    assert len(dupes) == 2 and any(r["usable"] for r in dupes)
    assert "differs from backend name 'other'" in rows["misnamed"]["reason"]
    assert rows["good"]["usable"]


def test_other_backends_still_work_next_to_broken_ones(plugin_env) -> None:
    code = (
        "import needle as ndl\n"
        "x = ndl.Tensor([1.0, 2.0], device='good')\n"
        "print((x * 3.0).numpy().tolist())\n"
    )
    out = run_py(code, plugin_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[3.0, 6.0]"


def test_partial_backend_error_names_the_kernel(plugin_env) -> None:
    out = run_py("import needle as ndl; ndl.Tensor([1.0], device='partial')", plugin_env)
    assert out.returncode != 0
    assert "ewise_mul" in out.stderr and "PluginError" in out.stderr


def test_strict_mode_raises(plugin_env) -> None:
    env = dict(plugin_env, NEEDLE_STRICT_PLUGINS="1")
    out = run_py("import needle as ndl; ndl.Tensor([1.0], device='numpy')", env)
    assert out.returncode != 0
    assert "PluginError" in out.stderr and "boom at import" in out.stderr


def test_unknown_backend_lists_installed(tmp_path) -> None:
    env = dict(os.environ, NEEDLE_BACKEND="nosuch")
    ok = run_py("import needle", env)
    assert ok.returncode == 0, ok.stderr  # import alone never fails
    out = run_py("import needle as ndl; ndl.Tensor([1.0])", env)
    assert out.returncode != 0
    assert "'nosuch' is not installed" in out.stderr and "numpy (usable)" in out.stderr


# --- in-process registration -----------------------------------------------------------
class InProcessPlugin:
    """A plugin object registered without an entry point."""

    def __init__(self, name: str, version: tuple[int, int] = (1, 0), usable: bool = True) -> None:
        self.name, self.version, self.usable = name, version, usable

    @hookimpl
    def needle_backend_info(self) -> BackendInfo:
        return BackendInfo(name=self.name, version="1", contract_version=self.version)

    @hookimpl
    def needle_backend_status(self) -> BackendStatus:
        return BackendStatus(self.usable, "" if self.usable else "no widget attached", 1)

    @hookimpl
    def needle_backend_load(self, index: int):
        return ndl.device("numpy").kernels


def test_in_process_registration_and_device_equality() -> None:
    backend = register_plugin(InProcessPlugin("inproc"))
    try:
        assert backend is not None and "inproc" in list_backends()
        x = ndl.Tensor([1.0, 2.0], device="inproc")
        assert x.device == ndl.device("inproc") and x.device != ndl.device("numpy")
        assert str(x.device) == "inproc"
        assert (x + x).numpy().tolist() == [2.0, 4.0]
    finally:
        unregister_plugin("inproc")
    assert "inproc" not in list_backends()


def test_in_process_wrong_contract_is_refused() -> None:
    assert register_plugin(InProcessPlugin("future", version=(2, 0))) is None
    try:
        reasons = [f.reason for f in plugin_failures() if f.name == "future"]
        assert reasons and "2.0" in reasons[0] and "1.0" in reasons[0]
    finally:
        unregister_plugin("future")


def test_unusable_backend_reports_reason(monkeypatch) -> None:
    register_plugin(InProcessPlugin("nowidget", usable=False))
    try:
        assert not ndl.device("nowidget").enabled()
        monkeypatch.setenv("NEEDLE_BACKEND", "nowidget")
        with pytest.raises(BackendError, match="no widget attached"):
            ndl.Tensor([1.0])
    finally:
        unregister_plugin("nowidget")


def test_strict_mode_in_process(monkeypatch) -> None:
    monkeypatch.setenv("NEEDLE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="contract"):
        register_plugin(InProcessPlugin("strictly", version=(7, 0)))
    unregister_plugin("strictly")


def test_needle_backend_selects_default(monkeypatch) -> None:
    monkeypatch.setenv("NEEDLE_BACKEND", "numpy")
    assert ndl.Tensor([1.0]).device == ndl.cpu_numpy()


def test_course_helpers() -> None:
    assert ndl.cpu().name in ("cpp", "numpy")
    assert ndl.cpu_numpy().name == "numpy"
    cuda = ndl.cuda()
    assert cuda.name == "cuda"
    assert isinstance(cuda.enabled(), bool)


def test_device_spec_errors() -> None:
    with pytest.raises(ValueError, match="bad device index"):
        ndl.device("numpy:x")
    with pytest.raises(TypeError):
        ndl.device(3)  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="index 2 is out of range"):
        ndl.Tensor([1.0], device="numpy:2")
