"""``python -m benchmarks.paired``: needle and PyTorch timed in turn, call by call."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def test_paired_alternates_the_order_every_round() -> None:
    from benchmarks.paired import Pair, run_pair

    order: list[str] = []
    pair = Pair(lambda: order.append("n"), lambda: order.append("t"))
    ours, theirs, median = run_pair(pair, 4)
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
    assert names == [
        "MLP",
        "MLPResNet",
        "ResNet9",
        "LanguageModel",
        "TransformerLM",
        "MNIST",
        "matmul_backward",
        "tiny_add",
    ]
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


def test_interleaved_times_each_side_per_call() -> None:
    from benchmarks.paired import Interleaved, Pair

    calls = {"n": 0, "t": 0}
    setups: list[str] = []

    def ours(x: int) -> None:
        calls["n"] += x
        time.sleep(0.002)

    def theirs(x: int) -> None:
        calls["t"] += x
        time.sleep(0.001)

    pair = Pair(ours, theirs, (lambda: (setups.append("n") or 1,), lambda: (2,)), inner=3)
    timer = Interleaved(pair)
    with pytest.raises(ValueError, match="no round"):
        timer.summary()
    for _ in range(4):
        timer.round()
    assert calls == {"n": 12, "t": 24}  # inner calls per round, with each setup's argument
    assert setups == ["n"] * 4  # one untimed setup per timed sample, not per inner call
    ours_min, theirs_min, median = timer.summary()
    assert 0.002 <= ours_min < 0.02 and 0.001 <= theirs_min < 0.01  # per call, not per 3
    assert median == pytest.approx(
        statistics.median(a / b for a, b in zip(timer.ours, timer.theirs))
    )


def test_paired_refuses_unknown_cases() -> None:
    cmd = [sys.executable, "-m", "benchmarks.paired", "--cases", "AlexNet"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown cases ['AlexNet']" in proc.stderr
