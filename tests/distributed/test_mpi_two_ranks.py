"""Two-process tests: each launches ``mpiexec -n 2`` on tests/distributed/mpi_worker.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# Float32 tolerance for "the same parameters": only the order of the reductions differs
# (two half-batch sums added by MPI vs one full-batch sum). Measured max difference
# after 20 SGD steps: 6e-8.
RTOL, ATOL = 1e-5, 1e-6


@pytest.mark.parametrize("backend", ["numpy", "cpp"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_two_ranks_equal_one_process(mpirun, tmp_path, backend, model):
    """2 ranks x batch 64 for 20 SGD steps == 1 process x batch 128 (cnn: SyncBatchNorm)."""
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--backend", backend, "--model", model, "--steps", "20"]
    mpirun("equivalence", str(one), *common, n=0)
    # tiny buckets: several all-reduces in flight during backward
    mpirun("equivalence", str(two), *common, "--bucket-mb", "0.001")
    ref = np.load(f"{one}.rank0.npz")
    r0, r1 = np.load(f"{two}.rank0.npz"), np.load(f"{two}.rank1.npz")
    assert sorted(ref.files) == sorted(r0.files) == sorted(r1.files)
    for key in ref.files:
        np.testing.assert_array_equal(r0[key], r1[key], err_msg=key)  # ranks agree exactly
        np.testing.assert_allclose(r0[key], ref[key], rtol=RTOL, atol=ATOL, err_msg=key)
    if model == "cnn":
        assert "1.running_mean" in ref.files  # SyncBatchNorm's global running statistics


def test_collective_values(mpirun, tmp_path):
    out = tmp_path / "c"
    mpirun("collectives", str(out))
    ranks = [json.loads((tmp_path / f"c.rank{r}.json").read_text()) for r in (0, 1)]
    base = [np.arange(6, dtype=np.float64).reshape(2, 3) + 10 * r for r in (0, 1)]
    for got in ranks:
        assert got["world"] == 2
        for backend in ("numpy", "cpp"):
            for dtype in ("float32", "float64"):
                key = f"{backend}.{dtype}"
                np.testing.assert_array_equal(got[key + ".sum"], base[0] + base[1])
                np.testing.assert_array_equal(got[key + ".mean"], (base[0] + base[1]) / 2)
                np.testing.assert_array_equal(got[key + ".max"], np.maximum(*base))
                np.testing.assert_array_equal(got[key + ".min"], np.minimum(*base))
                np.testing.assert_array_equal(got[key + ".bcast"], base[1])
                np.testing.assert_array_equal(got[key + ".gather"], np.stack(base))
                np.testing.assert_array_equal(got[key + ".sum_T"], (base[0] + base[1]).T)
                assert got[key + ".dtype"] == dtype
            # loss = sum_r (r + 1) * sum(all_reduce(a)): d/da on each rank = 1 + 2
            np.testing.assert_array_equal(got[backend + ".grad"], np.full((2, 3), 3.0))


def test_different_models_detected_on_every_rank(mpirun, tmp_path):
    mpirun("different_models", str(tmp_path / "d"))
    for r in (0, 1):
        msg = json.loads((tmp_path / f"d.rank{r}.json").read_text())["error"]
        assert "first differing parameter '2.weight'" in msg
        assert "rank 0 has float32(8, 2)" in msg and "rank 1 has float32(9, 2)" in msg


def test_compiled_ddp_step_is_refused(mpirun, tmp_path):
    if not hasattr(__import__("needle"), "compile"):
        pytest.skip("needs needle.compile")
    mpirun("capture", str(tmp_path / "k"))
    for r in (0, 1):
        got = json.loads((tmp_path / f"k.rank{r}.json").read_text())
        assert got["error"] == "CaptureError"
        assert "cannot be captured by needle.compile" in got["message"]


@pytest.mark.parametrize("how", ["kill", "raise", "hang"])
def test_a_failing_rank_ends_the_job(mpirun, tmp_path, how):
    """Rank 1 is SIGKILLed / raises / hangs at step 3 of an epoch: all ranks end, with an
    error, well within 60 s (hang: through the collective timeout, set to 5 s here)."""
    proc, elapsed = mpirun(
        "failure",
        str(tmp_path / "f"),
        "--how",
        how,
        check=False,
        timeout=120,
        NEEDLE_DIST_TIMEOUT="5",
    )
    assert proc.returncode != 0
    assert elapsed < 60, f"job took {elapsed:.1f} s to end"
    text = proc.stdout + proc.stderr
    if how == "kill":
        assert "BAD TERMINATION" in text or "Killed" in text
    elif how == "raise":
        assert "rank 1 of 2 raised; aborting every rank" in text
        assert "deliberate failure on rank 1 at step 3" in text
    else:
        assert "DistributedTimeoutError" in text and "did not complete within 5 s" in text


def test_needle_train_distributed_and_resume(mpirun, tmp_path):
    """``needle train mnist-mlp --distributed`` on 2 ranks: rank 0 alone logs and writes;
    --resume continues on every rank; the test metrics cover the whole test set."""
    import subprocess
    import sys

    ckpt, metrics = tmp_path / "ck.safetensors", tmp_path / "m.json"
    base = [mpirun.mpiexec, "-n", "2", sys.executable, "-m", "needle.training", "mnist-mlp"]
    opts = ["--distributed", "--no-progress", "--limit-batches", "30", "--checkpoint", str(ckpt)]

    def run(*extra):
        proc = subprocess.run(
            [*base, *opts, *extra], capture_output=True, text=True, timeout=300, env=mpirun.env()
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout

    out = run("--epochs", "1", "--metrics-json", str(metrics))
    assert out.count("final:") == 1 and out.count("epoch 1/1") == 1  # rank 0 only
    first = json.loads(metrics.read_text())
    assert first["test_accuracy"] > 0.8 and ckpt.exists()
    out = run("--epochs", "2", "--resume", str(ckpt), "--metrics-json", str(metrics))
    assert out.count("resumed from") == 1 and "epoch 2/2" in out and "epoch 1/2" not in out
    assert json.loads(metrics.read_text())["epochs"] == 2
