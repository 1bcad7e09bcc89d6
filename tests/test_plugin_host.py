"""The plugin host: discovery through entry points, validation, failures, selection."""

from __future__ import annotations

import json
import os
from pathlib import Path

import needle as ndl
import numpy as np
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
from plugin_dist import make_distribution, run_py

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


def test_broken_plugins_are_listed_with_reasons(plugin_env) -> None:
    out = run_py("from needle.cli import main; main(['backends', '--json'])", plugin_env)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert "boom at import" in rows["raises"]["reason"]
    current = "{}.{}".format(*ndl.backends.CONTRACT_VERSION)
    assert "0.9" in rows["oldcontract"]["reason"] and current in rows["oldcontract"]["reason"]
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
        current = "{}.{}".format(*ndl.backends.CONTRACT_VERSION)
        assert reasons and "2.0" in reasons[0] and current in reasons[0]
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


# --- kernel arity ----------------------------------------------------------------------
class TablePlugin(InProcessPlugin):
    """A usable in-process plugin whose kernel table is the NumPy one with overrides."""

    def __init__(self, name: str, **overrides: object) -> None:
        super().__init__(name)
        self.overrides = overrides

    @hookimpl
    def needle_backend_load(self, index: int):
        from types import SimpleNamespace

        from needle.backends import REQUIRED_KERNELS

        base = ndl.device("numpy").kernels
        table = SimpleNamespace(**{k: getattr(base, k) for k in REQUIRED_KERNELS})
        vars(table).update(self.overrides)
        return table


class FakeBuiltin:
    """Like a pybind11 function: no signature object, a signature line in ``__doc__``."""

    __signature__ = "not a Signature"  # makes inspect.signature raise TypeError

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __call__(self, *args: object) -> None:
        raise AssertionError("never called by registration")


def _refused(plugin: InProcessPlugin) -> str:
    backend = register_plugin(plugin)
    try:
        assert backend is not None
        with pytest.raises(PluginError) as info:
            backend.kernels(0)
        assert not backend.status().usable
        return str(info.value)
    finally:
        unregister_plugin(plugin.name)


def test_kernel_with_wrong_arity_is_refused() -> None:
    def ewise_add(a, b):  # forgot out
        raise AssertionError("never called")

    message = _refused(TablePlugin("twoargs", ewise_add=ewise_add))
    assert "'twoargs'" in message
    assert "ewise_add must be ewise_add(a, b, out) (3 parameters)" in message
    assert "found ewise_add(a, b)" in message


def test_wrong_arity_of_a_compiled_kernel_is_read_from_its_docstring() -> None:
    two = FakeBuiltin("scalar_mul(a: mod.Array, out: mod.Array) -> None\n\nMultiply.")
    message = _refused(TablePlugin("builtin2", scalar_mul=two))
    assert "scalar_mul must be scalar_mul(a, value, out)" in message
    assert "found scalar_mul(a, out)" in message


def test_arity_is_skipped_when_it_cannot_be_read() -> None:
    overloaded = FakeBuiltin("ewise_add(*args, **kwargs)\nOverloaded function.")
    plugin = TablePlugin("overloaded", ewise_add=overloaded, ewise_sub=FakeBuiltin(""))
    backend = register_plugin(plugin)
    try:
        assert backend is not None and backend.kernels(0).ewise_add is overloaded
    finally:
        unregister_plugin("overloaded")


def test_arity_reader_handles_defaults_varargs_and_bracketed_types() -> None:
    from needle.backends._arity import arity_of

    def with_default(a, b, out, scale=1.0):
        pass

    def var(*args):
        pass

    assert arity_of(with_default).accepts(3) and arity_of(with_default).accepts(4)
    assert not arity_of(with_default).accepts(2)
    assert arity_of(var).accepts(0) and arity_of(var).accepts(9)
    doc = FakeBuiltin(
        "to_numpy(a: m.Array, shape: collections.abc.Sequence[typing.SupportsInt | int], "
        "strides: dict[str, tuple[int, int]], offset: int = 0) -> numpy.ndarray"
    )
    found = arity_of(doc)
    assert found is not None and (found.low, found.high) == (3, 4)
    assert found.shown == "(a, shape, strides, offset)"
    assert arity_of(FakeBuiltin("not a signature line")) is None


def test_declared_optional_kernel_arity_is_checked() -> None:
    def softmax_last(a, out):  # lacks reduce_size
        raise AssertionError("never called")

    class Optional(TablePlugin):
        @hookimpl
        def needle_backend_info(self) -> BackendInfo:
            return BackendInfo(
                name=self.name,
                version="1",
                contract_version=(1, 0),
                optional_kernels=("softmax_last",),
            )

    message = _refused(Optional("optarity", softmax_last=softmax_last))
    assert "softmax_last must be softmax_last(a, out, reduce_size)" in message


@pytest.mark.parametrize("name", ["numpy", "cpp"])
def test_builtin_backends_pass_the_arity_check(name: str) -> None:
    from needle.backends import KERNELS, REGISTRY
    from needle.backends._arity import arity_of

    if name not in list_backends() or not list_backends()[name].status().usable:
        pytest.skip(f"backend {name} is not installed here")
    backend = REGISTRY.get(name)
    table = backend.kernels(0)  # validated, so it passed
    names = [*(k for k, s in KERNELS.items() if s.required), *backend.info.optional_kernels]
    # the check really ran: every kernel's arity is readable and right
    for kernel in names:
        found = arity_of(getattr(table, kernel))
        assert found is not None, kernel
        assert found.accepts(KERNELS[kernel].arity), (kernel, found)


def test_fallback_gets_the_reference_table_lazily(monkeypatch) -> None:
    from needle.backends import _fallback

    monkeypatch.setenv("NEEDLE_FALLBACK", "1")

    class Dropping(TablePlugin):
        @hookimpl
        def needle_backend_load(self, index: int):
            table = TablePlugin.needle_backend_load(self, index)
            del table.ewise_mul
            return table

    backend = register_plugin(Dropping("lazyfb"))
    try:
        assert backend is not None
        table = backend.kernels(0)
        assert isinstance(table, _fallback.FallbackTable)
        assert backend.fallback_kernels == ("ewise_mul",)
        k = table
        a, out = k.alloc(3, "float32"), k.alloc(3, "float32")
        k.from_numpy(np.array([1.0, 2.0, 3.0], "float32"), a)
        with pytest.warns(RuntimeWarning, match="ewise_mul.*falls back to NumPy"):
            k.ewise_mul(a, a, out)
        assert k.to_numpy(out, (3,), (1,), 0).tolist() == [1.0, 4.0, 9.0]
    finally:
        unregister_plugin("lazyfb")


def test_registry_and_fallback_do_not_import_each_other() -> None:
    import ast

    import needle.backends as host

    def imported(module: str) -> set[str]:
        tree = ast.parse((Path(host.__file__).parent / f"{module}.py").read_text())
        return {
            (node.module or "").lstrip(".")
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level
        }

    assert "_registry" not in imported("_fallback")
    assert "_fallback" in imported("_registry")
