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


def test_resume_rejects_checkpoint_of_other_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "c.st"
    _run("mnist-mlp", "--epochs", "1", "--limit-batches", "1", "--checkpoint", str(ckpt))
    argv = ["mnist-cnn", "--epochs", "1", "--limit-batches", "1", "--resume", str(ckpt)]
    assert training.main([*argv, "--no-progress", "--backend", "numpy"]) == 2
    assert "mnist-mlp" in capsys.readouterr().err


def test_truncated_checkpoint_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "c.st"
    _run("mnist-mlp", "--epochs", "1", "--limit-batches", "1", "--checkpoint", str(ckpt))
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    argv = ["mnist-mlp", "--epochs", "2", "--limit-batches", "1", "--resume", str(ckpt)]
    assert training.main([*argv, "--no-progress", "--backend", "numpy"]) == 2
    assert "c.st" in capsys.readouterr().err


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


# --- the pieces: config, tasks, the one loop --------------------------------------------


def test_config_rejects_unknown_option() -> None:
    with pytest.raises(TypeError, match="no_such_option"):
        training.TrainConfig("mnist-mlp", no_such_option=1)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("batch_size", 0, training.TrainConfigError),
        ("epochs", -1, training.TrainConfigError),
        ("limit_batches", 0, training.TrainConfigError),
        ("seed", -1, training.TrainConfigError),
        ("seed", 2**32, training.TrainConfigError),
        ("lr", 0.0, training.TrainConfigError),
        ("lr", float("nan"), training.TrainConfigError),
        ("dropout", 1.0, training.TrainConfigError),
        ("clip", -0.5, training.TrainConfigError),
        ("optimizer", "rmsprop", training.TrainConfigError),
        ("epochs", "3", TypeError),
        ("epochs", 2.0, TypeError),
        ("progress", "no", TypeError),
        ("lr", True, TypeError),
    ],
)
def test_config_rejects_invalid_value_naming_it(option: str, value: object, error: type) -> None:
    with pytest.raises(error, match=option):
        training.TrainConfig("mnist-mlp", **{option: value})


def test_config_is_a_value_error_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:  # refused by argparse, at parse time
        training.main(["mnist-mlp", "--batch-size", "0", "--no-progress"])
    assert exit_info.value.code == 2
    assert "--batch-size: must be >= 1, got 0" in capsys.readouterr().err


def test_task_defaults_fill_only_what_the_user_left_out() -> None:
    lm = training.TASKS["ptb-transformer"].configure(
        training.TrainConfig("ptb-transformer", lr=0.5)
    )
    assert (lm.lr, lm.epochs, lm.batch_size, lm.dropout, lm.clip, lm.bptt) == (
        0.5,
        5,
        16,
        0.1,
        5.0,
        35,
    )
    assert isinstance(lm, training.TaskConfig) and lm.unset() == []
    mlp = training.TASKS["mnist-mlp"].configure(training.TrainConfig("mnist-mlp", epochs=0))
    assert (mlp.epochs, mlp.optimizer, mlp.weight_decay, mlp.clip) == (0, "adam", 0.0, 0.0)


def test_unknown_task_lists_the_tasks() -> None:
    with pytest.raises(training.TrainConfigError, match=r"mnist-mlp.*ptb-lstm"):
        training.get_task("no-such-task")
    with pytest.raises(ValueError, match="epochs"):
        _Blobs("b", "x", {"batch_size": 8, "lr": 0.1, "optimizer": "sgd"}, model=print)


def test_namespace_of_the_needle_parser_makes_a_config() -> None:
    parser = argparse.ArgumentParser(prog="needle")
    training.add_train_parser(parser.add_subparsers(dest="command"))
    ns = parser.parse_args(["train", "ptb-lstm", "--clip", "1", "--no-progress"])
    config = training.TrainConfig.from_namespace(ns)  # "command", "func" are not options
    assert config == training.TrainConfig("ptb-lstm", clip=1.0, progress=False)


class _Blobs(training.ClassificationTask):
    """Three separable 4-d Gaussian blobs, in memory: a classification task for tests."""

    def datasets(self, config: training.TrainConfig) -> tuple[object, object]:
        from needle import data

        rng = np.random.default_rng(1)
        centers = 3.0 * np.eye(3, 4, dtype=np.float32)

        def split(n: int) -> object:
            y = rng.integers(0, 3, size=n)
            x = centers[y] + rng.standard_normal((n, 4)).astype(np.float32)
            return data.NDArrayDataset(x.astype(np.float32), y.astype(np.uint8))

        return split(96), split(40)


def _blobs() -> _Blobs:
    return _Blobs(
        "blobs",
        "Gaussian blobs",
        {"epochs": 8, "batch_size": 16, "lr": 0.1, "optimizer": "sgd"},
        model=lambda device: ndl.nn.Linear(4, 3, device=device),
    )


def _numpy_eval(task: _Blobs, model: object, data: dict[str, object]) -> tuple[float, float]:
    """Mean softmax cross-entropy and accuracy of the linear model, in NumPy."""
    ds = data["test"].dataset  # type: ignore[attr-defined]
    x, y = ds.arrays
    w = model.weight.numpy().astype(np.float64)  # type: ignore[attr-defined]
    b = model.bias.numpy().astype(np.float64).reshape(-1)  # type: ignore[attr-defined]
    z = x.astype(np.float64) @ w + b
    logz = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    y = y.astype(np.int64)
    return float((logz - z[np.arange(len(y)), y]).mean()), float((z.argmax(1) == y).mean())


def test_fake_task_through_the_one_loop(tmp_path: Path) -> None:
    import math

    task = _blobs()
    seen: list[tuple[str, bool, float, float]] = []
    kept: dict[str, object] = {}
    run_epoch = task.run_epoch

    def spy(model, opt, data, split, *, train, config, **kw):  # type: ignore[no-untyped-def]
        draw = float(np.random.get_state(legacy=False)["state"]["key"][0])
        seen.append((split, train, opt.lr if opt is not None else 0.0, draw))
        kept.update(model=model, data=data)
        return run_epoch(model, opt, data, split, train=train, config=config, **kw)

    task.run_epoch = spy  # type: ignore[method-assign]
    averaged: list[int] = []
    hooks = training.TrainHooks(average_gradients=lambda ps: averaged.append(len(ps)))
    config = training.TrainConfig("blobs", backend="numpy", seed=5, progress=False)
    metrics = training.train(config, task=task, hooks=hooks)

    assert list(metrics) == [
        "task", "backend", "epochs", "seconds", "test_loss", "train_loss",
        "test_accuracy", "train_accuracy",
    ]  # fmt: skip
    epochs = 8
    assert [(s, t) for s, t, _, _ in seen] == [("train", True)] * epochs + [("test", False)]
    lrs = [lr for _, t, lr, _ in seen if t]
    cosine = [0.005 + 0.095 * (1 + math.cos(math.pi * e / (epochs - 1))) / 2 for e in range(epochs)]
    np.testing.assert_allclose(lrs, cosine, rtol=1e-12)
    for e in range(epochs):  # each epoch starts from the generator seeded with (seed, e)
        np.random.seed(training.checkpoint.epoch_seed(5, e))
        assert seen[e][3] == float(np.random.get_state(legacy=False)["state"]["key"][0])
    assert averaged == [2] * (epochs * 6)  # weight and bias, once per batch (96 / 16)
    loss, accuracy = _numpy_eval(task, kept["model"], kept["data"])  # type: ignore[arg-type]
    assert metrics["test_loss"] == pytest.approx(loss, rel=1e-5)
    assert metrics["test_accuracy"] == pytest.approx(accuracy)
    assert metrics["test_accuracy"] > 0.8  # the blobs are separable


def test_non_primary_process_neither_logs_nor_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = training.TrainConfig(
        "blobs",
        backend="numpy",
        epochs=1,
        progress=False,
        checkpoint=str(tmp_path / "c.st"),
        metrics_json=str(tmp_path / "m.json"),
    )
    metrics = training.train(config, task=_blobs(), hooks=training.TrainHooks(is_primary=False))
    assert metrics["epochs"] == 1
    assert capsys.readouterr().out == ""
    assert not (tmp_path / "c.st").exists() and not (tmp_path / "m.json").exists()


def test_run_epoch_training_needs_an_optimizer() -> None:
    task = _blobs()
    config = task.configure(training.TrainConfig("blobs"))
    device = ndl.device("numpy")
    data = task.load_data(config, device)
    with pytest.raises(ValueError, match="optimizer"):
        task.run_epoch(
            task.build_model(config, device, data), None, data, "train", train=True, config=config
        )


def test_task_object_must_match_config() -> None:
    with pytest.raises(training.TrainConfigError, match="task"):
        training.train(training.TrainConfig("mnist-mlp"), task=_blobs())
