"""The pluggy hooks and the contract: every required kernel and declared optional kernel."""

from __future__ import annotations

import importlib.metadata

import pytest

backends = pytest.importorskip("needle.backends")


def test_info_is_cheap_and_complete():
    from needle_cpp import plugin

    info = plugin.needle_backend_info()
    assert info.name == "cpp"
    assert info.contract_version == backends.CONTRACT_VERSION
    assert info.dtypes == ("float32", "float64")
    assert set(info.optional_kernels) <= set(backends.OPTIONAL_KERNELS)


def test_status_usable():
    from needle_cpp import plugin

    status = plugin.needle_backend_status()
    assert status.usable and status.device_count == 1 and status.reason == ""


def test_load_exposes_every_kernel():
    from needle_cpp import plugin

    k = plugin.needle_backend_load(0)
    missing = [name for name in backends.REQUIRED_KERNELS if not callable(getattr(k, name, None))]
    assert missing == []
    info = plugin.needle_backend_info()
    assert [n for n in info.optional_kernels if not callable(getattr(k, n, None))] == []
    with pytest.raises(IndexError, match="cpp"):
        plugin.needle_backend_load(1)


def test_every_kernel_has_the_contracts_arity():
    """Each compiled kernel's signature line names the record's parameters (arity checked
    at registration; the names too, so the docs and the stub agree with the contract)."""
    from needle.backends._arity import arity_of
    from needle_cpp import plugin

    k = plugin.needle_backend_load(0)
    names = [*backends.REQUIRED_KERNELS, *plugin.needle_backend_info().optional_kernels]
    for name in names:
        spec = backends.KERNELS[name]
        found = arity_of(getattr(k, name))
        assert found is not None, name
        assert found.shown == f"({', '.join(spec.params)})", (name, found.shown, spec.signature)


def test_entry_point_registered():
    eps = importlib.metadata.entry_points(group="needle.backends")
    assert any(ep.name == "cpp" and ep.value == "needle_cpp.plugin" for ep in eps)


def test_controls():
    from needle_cpp import _core

    assert _core.simd_level() in ("avx512", "avx2", "scalar")
    assert _core.get_num_threads() >= 1
