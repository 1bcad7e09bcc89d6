"""``needle train``: tiny runs, metrics, checkpoints and resume determinism."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from needle import training

pytestmark = pytest.mark.slow


def _run(*argv: str) -> None:
    assert training.main([*argv, "--no-progress", "--backend", "numpy"]) == 0


def _params(path: Path) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in ndl.load(path)["model"].items()}


def test_resume_gives_identical_parameters(tmp_path: Path) -> None:
    common = ["mnist-mlp", "--limit-batches", "3", "--batch-size", "32", "--seed", "7"]
    _run(*common, "--epochs", "2", "--checkpoint", str(tmp_path / "full.st"))
    _run(*common, "--epochs", "1", "--checkpoint", str(tmp_path / "half.st"))
    _run(
        *common,
        "--epochs",
        "2",
        "--resume",
        str(tmp_path / "half.st"),
        "--checkpoint",
        str(tmp_path / "resumed.st"),
    )
    full, resumed, half = (_params(tmp_path / f) for f in ("full.st", "resumed.st", "half.st"))
    assert full.keys() == resumed.keys()
    for k in full:
        np.testing.assert_array_equal(full[k], resumed[k], err_msg=k)
    assert any(not np.array_equal(full[k], half[k]) for k in full)  # epoch 2 did train
    ckpt = ndl.load(tmp_path / "resumed.st")
    assert ckpt["epoch"] == 2 and ckpt["task"] == "mnist-mlp" and ckpt["optimizer"]["t"] == 6


def test_metrics_json_and_learning(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    _run(
        "mnist-mlp",
        "--epochs",
        "1",
        "--limit-batches",
        "40",
        "--batch-size",
        "64",
        "--metrics-json",
        str(out),
    )
    metrics = json.loads(out.read_text())
    assert metrics["task"] == "mnist-mlp" and metrics["backend"] == "numpy"
    assert metrics["epochs"] == 1 and metrics["seconds"] > 0
    assert metrics["test_accuracy"] > 0.7  # 40 steps of Adam already learn a lot


def test_language_model_beats_unigram_quickly(tmp_path: Path) -> None:
    out = tmp_path / "lm.json"
    _run(
        "ptb-lstm",
        "--epochs",
        "1",
        "--limit-batches",
        "6",
        "--bptt",
        "10",
        "--embedding-size",
        "16",
        "--hidden-size",
        "16",
        "--metrics-json",
        str(out),
    )
    metrics = json.loads(out.read_text())
    assert metrics["unigram_valid_perplexity"] > 100
    assert 1 < metrics["valid_perplexity"] < 9100  # below the uniform guess over the vocabulary


def test_resume_rejects_checkpoint_of_other_task(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.st"
    _run("mnist-mlp", "--epochs", "1", "--limit-batches", "1", "--checkpoint", str(ckpt))
    with pytest.raises(ValueError, match="mnist-mlp"):
        _run("mnist-cnn", "--epochs", "1", "--limit-batches", "1", "--resume", str(ckpt))


def test_truncated_checkpoint_rejected(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.st"
    _run("mnist-mlp", "--epochs", "1", "--limit-batches", "1", "--checkpoint", str(ckpt))
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"c\.st"):
        _run("mnist-mlp", "--epochs", "2", "--limit-batches", "1", "--resume", str(ckpt))


def test_add_train_parser_registers_subcommand() -> None:
    parser = argparse.ArgumentParser(prog="needle")
    training.add_train_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "ptb-transformer", "--epochs", "2", "--lr", "0.5"])
    assert args.command == "train" and args.task == "ptb-transformer"
    assert args.epochs == 2 and args.lr == 0.5 and args.func is training.run
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "no-such-task"])


def test_cifar10_task_runs_on_fixture(tmp_path: Path) -> None:
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(4, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, size=4).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    out = tmp_path / "m.json"
    _run(
        "cifar10-resnet9",
        "--data-dir",
        str(tmp_path),
        "--epochs",
        "1",
        "--limit-batches",
        "1",
        "--metrics-json",
        str(out),
    )
    metrics = json.loads(out.read_text())
    assert metrics["task"] == "cifar10-resnet9" and 0 <= metrics["test_accuracy"] <= 1
