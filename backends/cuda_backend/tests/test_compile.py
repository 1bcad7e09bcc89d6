"""(1) Every .cu source compiles (nvcc, and NVRTC where CuPy can reach it)."""

from __future__ import annotations

import pytest
from needle_cuda import compile_check, sources

NVCC = compile_check.find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found (install the CUDA toolkit)")


def test_sources_exist_and_list_every_module():
    stems = {p.stem for p in sources.cu_files()}
    assert stems == set(sources.MODULE_KERNELS), "MODULE_KERNELS out of sync with kernels/*.cu"
    assert (sources.KERNEL_DIR / "common.cuh").is_file()


def test_module_source_is_self_contained():
    for stem in sources.MODULE_KERNELS:
        text = sources.module_source(stem)
        assert '#include "common.cuh"' not in text
        assert "namespace nd" in text
        assert text.count("NEEDLE_CUDA_COMMON_CUH") >= 2


@needs_nvcc
@pytest.mark.parametrize("path", sources.cu_files(), ids=lambda p: p.name)
def test_cu_file_compiles_with_nvcc(path, tmp_path):
    ok, log, entries = compile_check.compile_file(NVCC, path, "sm_80", tmp_path)
    assert ok, log
    missing = set(sources.MODULE_KERNELS[path.stem]) - entries
    assert not missing, f"kernels not exported by {path.name}: {sorted(missing)}"


@needs_nvcc
def test_compile_check_main_passes(capsys):
    assert compile_check.main([]) == 0
    out = capsys.readouterr().out
    assert f"{len(sources.cu_files())}/{len(sources.cu_files())} files ok" in out


@needs_nvcc
def test_compile_check_reports_a_broken_file(tmp_path):
    bad = tmp_path / "bad.cu"
    bad.write_text('extern "C" __global__ void broken(float* x) { x[0] = undefined_name; }\n')
    ok, log, _ = compile_check.compile_file(NVCC, bad, "sm_80", tmp_path)
    assert not ok
    assert "undefined_name" in log


def test_compile_check_skips_without_nvcc(monkeypatch, capsys):
    monkeypatch.setattr(compile_check, "find_nvcc", lambda explicit=None: None)
    assert compile_check.main([]) == 0
    assert "SKIPPED" in capsys.readouterr().out


def _nvrtc():
    try:
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
        return nvrtc
    except Exception:
        return None


@pytest.mark.skipif(_nvrtc() is None, reason="CuPy with a loadable NVRTC library not installed")
@pytest.mark.parametrize("stem", sorted(sources.MODULE_KERNELS))
def test_module_compiles_with_nvrtc(stem):
    """The exact text RawModule compiles, through NVRTC (works without a GPU)."""
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(sources.module_source(stem), f"{stem}.cu", [], [])
    try:
        nvrtc.compileProgram(prog, [*sources.COMPILE_OPTIONS, "-arch=compute_80"])
    except Exception as exc:
        pytest.fail(f"NVRTC failed on {stem}: {exc}\n{nvrtc.getProgramLog(prog)}")
    ptx = nvrtc.getPTX(prog)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    missing = set(sources.MODULE_KERNELS[stem]) - sources.ptx_entries(ptx)
    assert not missing
    nvrtc.destroyProgram(prog)
