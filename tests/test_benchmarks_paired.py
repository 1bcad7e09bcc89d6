"""``python -m benchmarks.paired``: needle and PyTorch timed in turn, call by call."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def test_paired_alternates_the_order_every_round() -> None:
    from benchmarks.paired import paired

    order: list[str] = []
    ours, theirs, median = paired(lambda: order.append("n"), lambda: order.append("t"), 4)
    assert order[:4] == ["n", "t", "n", "t"]  # two untimed warm-up pairs
    assert order[4:] == ["t", "n", "n", "t", "t", "n", "n", "t"]  # neither always first
    assert ours > 0 and theirs > 0 and median > 0


@pytest.mark.slow
def test_paired_reports_every_case() -> None:
    pytest.importorskip("torch")
    env = {**os.environ, "NEEDLE_BENCH_QUICK": "1", "NEEDLE_BENCH_THREADS": "1"}
    cmd = [sys.executable, "-m", "benchmarks.paired", "--rounds", "2"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if "ratio of minima" in ln]
    names = [ln.split()[0] for ln in lines]
    assert names == ["MLP", "MLPResNet", "ResNet9", "LSTM", "Transformer", "MNIST", "matmul"]
    for ln in lines:
        ours, theirs, ratio = (
            float(v)
            for v in re.findall(r"(\d+\.\d+) ms", ln)
            + [
                re.search(r"minima\s+(\d+\.\d+)", ln).group(1)  # type: ignore[union-attr]
            ]
        )
        assert ours > 0 and theirs > 0
        assert ratio == pytest.approx(ours / theirs, rel=0.03, abs=0.011), ln


def test_paired_refuses_unknown_cases() -> None:
    cmd = [sys.executable, "-m", "benchmarks.paired", "--cases", "AlexNet"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown cases ['AlexNet']" in proc.stderr
