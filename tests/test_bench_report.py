"""The benchmark report (``benchmarks/report.py``) on a small synthetic pytest-benchmark JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPORT_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"


@pytest.fixture(scope="module")
def report():
    # Loaded by path: tests/ does not put the repository root on sys.path.
    spec = importlib.util.spec_from_file_location("needle_bench_report", REPORT_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _entry(suite, case, impl, t, *, flops=None, nbytes=None, unit="", rounds=5):
    """An entry whose minimum time is ``t`` (and median 1.5 t)."""
    info = {"suite": suite, "case": case, "impl": impl, "kind": impl.split("-")[0], "threads": 2}
    if flops is not None:
        info["flops"] = flops
    if nbytes is not None:
        info["bytes"] = nbytes
    if unit:
        info["unit"] = unit
    stats = {"min": t, "median": 1.5 * t, "mean": 1.6 * t, "rounds": rounds}
    return {
        "group": f"{suite}: {case}",
        "name": f"bench[{impl}]",
        "extra_info": info,
        "stats": stats,
    }


N = 1024
MATMUL_FLOPS = 2.0 * N**3
ADD_BYTES = 3.0 * 4 * 16 * 2**20


@pytest.fixture
def bench_json(tmp_path):
    doc = {
        "machine_info": {
            "machine": "x86_64",
            "system": "Linux",
            "release": "6.1",
            "needle_bench": {
                "cpu_model": "AMD EPYC 9B14",
                "cores": 2,
                "threads": 2,
                "versions": {"numpy": "2.4.6", "needle": "0.1.0", "torch": "2.13.0+cpu"},
                "torch_threads": 2,
                "backends": {
                    "numpy": {"version": "0.1.0", "usable": True},
                    "cuda": {"version": "0.1.0", "usable": False, "reason": "no GPU"},
                },
                "blas": [
                    {
                        "user_api": "blas",
                        "internal_api": "openblas",
                        "version": "0.3.31",
                        "architecture": "SkylakeX",
                        "num_threads": 2,
                    }
                ],
                "command": "pytest benchmarks --benchmark-json=x.json",
            },
        },
        "commit_info": {"id": "0123456789abcdef", "dirty": False},
        "datetime": "2026-11-26T12:00:00",
        "benchmarks": [
            _entry("kernels", "matmul n=1024", "needle-numpy", 0.020, flops=MATMUL_FLOPS),
            _entry("kernels", "matmul n=1024", "needle-cpp", 0.010, flops=MATMUL_FLOPS),
            _entry("kernels", "matmul n=1024", "numpy", 0.0125, flops=MATMUL_FLOPS),
            _entry("kernels", "ewise_add n=16M", "needle-numpy", 0.0065, nbytes=ADD_BYTES),
            _entry("kernels", "ewise_add n=16M", "numpy", 0.0065, nbytes=ADD_BYTES),
            _entry("ops", "tanh forward", "needle-numpy", 0.004),
            _entry("ops", "tanh forward", "torch", 0.001),
            _entry("overhead", "a + b", "needle-numpy", 20e-6, unit="us"),
            _entry("overhead", "a + b", "torch", 2e-6, unit="us"),
            {"name": "foreign", "extra_info": {}, "stats": {"median": 1.0}},  # not ours: ignored
        ],
    }
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(doc))
    return path


def _rows(report, path):
    entries, _docs = report.load([path])
    rows = report.derive(report.to_rows(entries), threads=2, cores=2)
    return {(r.case, r.impl): r for r in rows}


def test_peak_follows_threads_and_cores(report):
    assert report.peak_gflops(2, 2) == pytest.approx(234.0)
    assert report.peak_gflops(1, 2) == pytest.approx(117.0)
    assert report.peak_gflops(8, 2) == pytest.approx(234.0)  # no more than one thread per core


def test_gflops_and_fraction_of_peak(report, bench_json):
    rows = _rows(report, bench_json)
    cpp = rows[("matmul n=1024", "needle-cpp")]
    assert cpp.gflops == pytest.approx(MATMUL_FLOPS / 0.010 / 1e9)  # 214.7 GFLOP/s
    assert cpp.gflops == pytest.approx(214.748, rel=1e-4)
    assert cpp.peak_fraction == pytest.approx(214.748 / 234.0, rel=1e-4)
    assert cpp.gbs is None and cpp.bandwidth_fraction is None


def test_bandwidth_and_fraction(report, bench_json):
    add = _rows(report, bench_json)[("ewise_add n=16M", "numpy")]
    assert add.gbs == pytest.approx(ADD_BYTES / 0.0065 / 1e9)  # 30.97 GB/s
    assert add.bandwidth_fraction == pytest.approx(add.gbs / 31.0)
    assert add.gflops is None


def test_ratios_to_reference_and_peer(report, bench_json):
    rows = _rows(report, bench_json)
    cpp = rows[("matmul n=1024", "needle-cpp")]
    assert cpp.vs_reference == pytest.approx(0.5)
    assert cpp.peer == "numpy"
    assert cpp.vs_peer == pytest.approx(0.8)
    tanh = rows[("tanh forward", "needle-numpy")]
    assert tanh.vs_reference == pytest.approx(1.0)
    assert (tanh.peer, tanh.vs_peer) == ("torch", pytest.approx(4.0))
    assert ("foreign", "") not in rows and len(rows) == 9


def test_markdown(report, bench_json, tmp_path):
    out = tmp_path / "docs" / "benchmarks.md"
    assert report.main([str(bench_json), "-o", str(out), "--command", "nox -s bench"]) == 0
    text = out.read_text()
    assert text.startswith("# needle benchmarks\n\nGenerated by `nox -s bench`.")
    assert "AMD EPYC 9B14" in text and "cores: 2" in text and "threads given to every" in text
    assert "numpy 2.4.6" in text and "torch 2.13.0+cpu" in text
    assert "cuda 0.1.0 (not usable: no GPU)" in text
    assert "openblas 0.3.31, SkylakeX kernels, 2 threads" in text
    assert "OPENBLAS_THREAD_TIMEOUT=unset)" in text  # the fixture's machine info has none
    assert "| matmul n=1024 | needle-numpy | 20.00 ms | 30.00 ms | 5 | 107.4 | 46% |" in text
    assert "|  | needle-cpp | 10.00 ms | 15.00 ms | 5 | 214.7 | 92% |  |  | 0.50 | 0.80 |" in text
    assert "| 31.0 | 100% |" in text  # ewise add: GB/s and fraction of the add bandwidth
    assert "| a + b | needle-numpy | 20.00 µs |" in text
    assert "--benchmark-compare-fail=min:10%" in text


def test_median_instead_of_min(report, bench_json):
    entries, _docs = report.load([bench_json])
    rows = report.derive(report.to_rows(entries), threads=2, cores=2, stat="median")
    cpp = next(r for r in rows if r.impl == "needle-cpp")
    assert cpp.gflops == pytest.approx(MATMUL_FLOPS / 0.015 / 1e9)
    assert cpp.vs_reference == pytest.approx(0.5)
    with pytest.raises(ValueError, match="stat must be"):
        report.derive(report.to_rows(entries), threads=2, stat="mean")


def test_busy_machine_is_flagged(report, bench_json):
    doc = json.loads(bench_json.read_text())
    doc["machine_info"]["needle_bench"].update(loadavg_start=[6.1, 7.8, 6.0], loadavg_end=[0.5])
    bench_json.write_text(json.dumps(doc))
    text = report.report([bench_json], "cmd")
    assert "load average (1, 5, 15 min) at start [6.1, 7.8, 6.0]" in text
    assert "the machine was busy with other work" in text


def test_default_command_is_the_report_itself(report, bench_json, capsys):
    report.main([str(bench_json)])
    assert f"Generated by `python -m benchmarks.report {bench_json}`." in capsys.readouterr().out


def test_time_format(report):
    assert report.fmt_time(2.5e-6) == "2.50 µs"
    assert report.fmt_time(250e-6) == "250.0 µs"
    assert report.fmt_time(0.0125) == "12.50 ms"
    assert report.fmt_time(3.0) == "3.00 s"
    assert report.fmt_time(0.002, unit="us") == "2000.0 µs"


def test_gpu_rows_have_throughput_but_no_cpu_peak_fractions(report, bench_json, tmp_path):
    n = 4096
    flops, nbytes = 2.0 * n**3, 3.0 * 4 * 64 * 2**20
    gpu = {"device": "cuda", "gpu": "NVIDIA H100 80GB HBM3"}

    def entry(case, impl, t, **work):
        e = _entry("gpu", case, impl, t, **work)
        e["extra_info"].update(gpu, kind="needle" if impl.startswith("needle") else "torch")
        return e

    doc = json.loads(bench_json.read_text())
    doc["benchmarks"] = [
        entry(f"matmul float32 n={n}", "needle-cuda", 0.004, flops=flops),
        entry(f"matmul float32 n={n}", "torch-cuda", 0.002, flops=flops),
        entry("ewise_add float32 n=67108864", "needle-cuda", 0.0004, nbytes=nbytes),
        entry("ewise_add float32 n=67108864", "torch-cuda", 0.0003, nbytes=nbytes),
        *doc["benchmarks"],  # CPU rows in the same file keep their fractions
    ]
    bench_json.write_text(json.dumps(doc))
    rows = _rows(report, bench_json)
    mm = rows[(f"matmul float32 n={n}", "needle-cuda")]
    assert mm.gflops == pytest.approx(flops / 0.004 / 1e9)  # 34359.7 GFLOP/s
    assert mm.peak_fraction is None and mm.device == "cuda"
    assert (mm.peer, mm.vs_peer) == ("torch-cuda", pytest.approx(2.0))
    add = rows[("ewise_add float32 n=67108864", "torch-cuda")]
    assert add.gbs == pytest.approx(nbytes / 0.0003 / 1e9) and add.bandwidth_fraction is None
    assert rows[("matmul n=1024", "needle-cpp")].peak_fraction == pytest.approx(214.748 / 234, 1e-4)

    text = report.report([bench_json], "cmd")
    assert "## GPU: needle-cuda vs PyTorch CUDA (float32; no CPU peak fractions)" in text
    gpu_table = text.split("## GPU:")[1].split("\n## ")[0]
    assert "% FMA peak" not in gpu_table and "% add BW" not in gpu_table
    assert "| case | impl | GPU | min | median | rounds | GFLOP/s | GB/s |" in gpu_table
    assert (
        "| matmul float32 n=4096 | needle-cuda | NVIDIA H100 80GB HBM3 | 4.00 ms | 6.00 ms | 5 "
        "| 34359.7 |  | 2.00 |" in gpu_table
    )
    assert "t / t(torch-cuda) |" in gpu_table and "t(needle-numpy)" not in gpu_table
    # The CPU suites are unchanged: no GPU column, fractions still there.
    assert "|  | needle-cpp | 10.00 ms | 15.00 ms | 5 | 214.7 | 92% |  |  | 0.50 | 0.80 |" in text


def _paired(case, ours, theirs, median_ratio, target, rounds=30):
    e = _entry("paired", case, "needle-cpp replayed / torch", ours + theirs, rounds=rounds)
    e["extra_info"].update(
        needle_min=ours, torch_min=theirs, median_ratio=median_ratio, target=target
    )
    return e


def test_side_by_side_table_comes_first_with_targets(report, bench_json):
    doc = json.loads(bench_json.read_text())
    doc["benchmarks"] += [
        _paired("LSTM LM", 0.018, 0.020, 0.93, 1.0),
        _paired("matmul 512 backward", 0.0036, 0.0030, 1.15, 1.2),
        _paired("ResNet9", 0.013, 0.010, 1.31, 1.2),
        _paired("Transformer", 0.0130, 0.0100, 1.10, 1.2),  # minima 1.30, median 1.10: met
        _paired("MLP step", 0.0005, 0.001, 0.55, None, rounds=200),
    ]
    bench_json.write_text(json.dumps(doc))
    text = report.report([bench_json], "cmd")
    first = text.index("## Issue 12: replayed needle-cpp against PyTorch, timed in turn")
    assert first < text.index("## Kernels")
    assert "| LSTM LM | 18.00 ms | 20.00 ms | 0.90 | 0.93 | 30 | ≤ 1.0 | yes |" in text
    assert "| matmul 512 backward | 3.60 ms | 3.00 ms | 1.20 | 1.15 | 30 | ≤ 1.2 | yes |" in text
    assert "| ResNet9 | 13.00 ms | 10.00 ms | 1.30 | 1.31 | 30 | ≤ 1.2 | **no** |" in text
    assert "| Transformer | 13.00 ms | 10.00 ms | 1.30 | 1.10 | 30 | ≤ 1.2 | yes |" in text
    assert "| MLP step | 500.0 µs | 1.00 ms | 0.50 | 0.55 | 200 |  |  |" in text
    # the pairs are not also listed as an implementation of some suite
    assert "needle-cpp replayed / torch" not in text


def test_side_by_side_table_alone(report, bench_json):
    doc = json.loads(bench_json.read_text())
    doc["benchmarks"] = [_paired("LSTM LM", 0.018, 0.020, 0.93, 1.0)]
    bench_json.write_text(json.dumps(doc))
    text = report.report([bench_json], "cmd")
    assert "| LSTM LM | 18.00 ms | 20.00 ms | 0.90 |" in text
    assert "No benchmark results" not in text
