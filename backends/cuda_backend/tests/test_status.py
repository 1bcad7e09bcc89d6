"""(2) The plugin: cheap import, the unusable report, info, the kernel-table shape."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import types
from pathlib import Path

import pluggy
import pytest
from needle.backends import BackendInfo, BackendStatus, hookspecs
from needle.backends.contract import (
    CONTRACT_VERSION,
    KERNELS,
    OPTIONAL_KERNELS,
    REQUIRED_KERNELS,
    kernels_in_family,
)
from needle_cuda import plugin

PKG_ROOT = Path(__file__).resolve().parent.parent


def _fake_cupy(count=None, error=None):
    """A stand-in ``cupy`` whose runtime reports ``count`` devices or raises ``error``."""
    mod = types.ModuleType("cupy")

    def get_device_count():
        if error is not None:
            raise error
        return count

    mod.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    return mod


def test_plugin_import_does_not_import_cupy():
    code = (
        "import sys\n"
        "import needle_cuda.plugin as p\n"
        "p.needle_backend_info()\n"
        "assert 'cupy' not in sys.modules, 'plugin imported cupy'\n"
        "assert 'needle_cuda.table' not in sys.modules\n"
        "print('clean')\n"
    )
    env_path = [p for p in sys.path if p]
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(env_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "clean" in proc.stdout


def test_status_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    st = plugin.needle_backend_status()
    assert isinstance(st, BackendStatus)
    assert st.usable is False
    assert st.reason == "CuPy not installed"
    assert st.device_count == 0


def test_status_with_zero_devices(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=0))
    st = plugin.needle_backend_status()
    assert (st.usable, st.reason, st.device_count) == (False, "no CUDA device", 0)


def test_status_with_cuda_runtime_error(monkeypatch):
    class CUDARuntimeError(RuntimeError):
        pass

    err = CUDARuntimeError("cudaErrorInsufficientDriver: driver too old")
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(error=err))
    st = plugin.needle_backend_status()
    assert st.usable is False
    assert st.reason.startswith("no CUDA device")
    assert "cudaErrorInsufficientDriver" in st.reason


def test_status_with_broken_cupy_never_raises(monkeypatch):
    class Exploding(types.ModuleType):
        def __getattr__(self, name):
            raise OSError("libcudart.so: cannot open shared object file")

    monkeypatch.setitem(sys.modules, "cupy", Exploding("cupy"))
    st = plugin.needle_backend_status()
    assert st.usable is False and st.reason.startswith("no CUDA device")


def test_status_with_devices(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=2))
    st = plugin.needle_backend_status()
    assert (st.usable, st.reason, st.device_count) == (True, "", 2)


def test_status_on_this_machine_never_raises():
    st = plugin.needle_backend_status()
    assert isinstance(st, BackendStatus)
    if not st.usable:
        assert st.reason and st.device_count == 0


def test_info():
    info = plugin.needle_backend_info()
    assert isinstance(info, BackendInfo)
    assert info.name == "cuda"
    assert info.contract_version[0] == CONTRACT_VERSION[0]
    assert set(info.dtypes) == {"float32", "float64"}
    assert set(info.optional_kernels) <= set(OPTIONAL_KERNELS)


def test_load_refuses_when_unusable(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(RuntimeError, match="CuPy not installed"):
        plugin.needle_backend_load(0)


def test_load_refuses_bad_index(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count=1))
    with pytest.raises(IndexError, match="cuda:3"):
        plugin.needle_backend_load(3)
    with pytest.raises(IndexError):
        plugin.needle_backend_load(-1)
    with pytest.raises(TypeError):
        plugin.needle_backend_load("0")


def test_registers_with_pluggy():
    pm = pluggy.PluginManager("needle")
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="cuda")
    pm.check_pending()
    (info,) = pm.hook.needle_backend_info()
    assert info.name == "cuda"
    (st,) = pm.hook.needle_backend_status()
    assert isinstance(st, BackendStatus)


def test_entry_point_declared():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        pytest.skip("tomllib needs Python 3.11")
    meta = tomllib.loads((PKG_ROOT / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "needle-cuda"
    assert meta["project"]["entry-points"]["needle.backends"] == {"cuda": "needle_cuda.plugin"}
    extras = meta["project"]["optional-dependencies"]
    assert any(r.startswith("cupy-cuda12x") for r in extras["cuda12"])
    assert any(r.startswith("cupy-cuda13x") for r in extras["cuda13"])
    assert not any("cupy" in d for d in meta["project"]["dependencies"])


def test_kernel_table_has_every_kernel(monkeypatch):
    """The table class exposes every required kernel and each declared optional one
    (imported against a stub ``cupy``: no GPU needed, nothing is launched)."""
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    monkeypatch.delitem(sys.modules, "needle_cuda.table", raising=False)
    table = importlib.import_module("needle_cuda.table")
    try:
        cls = table.CudaKernels
        missing = [k for k in REQUIRED_KERNELS if not callable(getattr(cls, k, None))]
        assert not missing, f"missing required kernels: {missing}"
        opt = [k for k in plugin.needle_backend_info().optional_kernels if not hasattr(cls, k)]
        assert not opt, f"declared optional kernels not implemented: {opt}"
        wrong = []
        for name in [*REQUIRED_KERNELS, *plugin.needle_backend_info().optional_kernels]:
            params = list(inspect.signature(getattr(cls, name)).parameters)[1:]  # drop self
            if len(params) != KERNELS[name].arity:
                wrong.append(f"{name}({', '.join(params)}) vs {KERNELS[name].signature}")
        assert not wrong, f"kernels whose arity differs from the contract: {wrong}"
    finally:
        sys.modules.pop("needle_cuda.table", None)


def test_op_lists_follow_the_contract():
    """The element-wise op names the CUDA sources are built from are the contract's."""
    from needle_cuda import sources

    def ops(family):
        return tuple(s.name.removeprefix("ewise_") for s in kernels_in_family(family))

    assert ops("ewise_binary") == sources.BINARY_OPS
    assert ops("ewise_unary") == sources.UNARY_OPS
    assert tuple(s.name.removeprefix("scalar_") for s in kernels_in_family("scalar_binary")) == (
        sources.BINARY_OPS
    )
