"""``needle train`` refuses nonsense before it trains; expected errors are one line, exit 2."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from needle import nn, optim, training
from needle.training import checkpoint as ckpt_mod
from needle.training import trainer

BASE = ["--no-progress", "--backend", "numpy"]


def _err_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--epochs", "-1", "must be >= 0, got -1"),
        ("--lr", "nan", "must be a finite number, got 'nan'"),
        ("--lr", "inf", "must be a finite number"),
        ("--lr", "0", "must be > 0.0, got 0.0"),
        ("--limit-batches", "0", "must be >= 1, got 0"),
        ("--bptt", "-5", "must be >= 1, got -5"),
        ("--clip", "-1", "must be >= 0.0, got -1.0"),
        ("--dropout", "2", "must be < 1.0, got 2.0"),
        ("--batch-size", "0", "must be >= 1, got 0"),
        ("--momentum", "1.5", "must be < 1.0"),
        ("--seed", "-3", "must be >= 0"),
        ("--epochs", "two", "expected an integer, got 'two'"),
    ],
)
def test_bad_flags_are_refused_at_parse_time_in_one_line(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, says: str
) -> None:
    with pytest.raises(SystemExit) as info:
        training.main(["mnist-mlp", flag, value, *BASE])
    assert info.value.code == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1, lines
    assert f"argument {flag}: {says}" in lines[0]


def test_a_missing_data_dir_is_an_error_not_a_silent_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert training.main(["mnist-mlp", "--data-dir", str(missing), *BASE]) == 2
    lines = _err_lines(capsys)
    assert lines == [f"needle train: error: option 'data_dir': {missing} is not a folder"]


@pytest.mark.parametrize("option", ["--checkpoint", "--metrics-json"])
def test_unwritable_outputs_fail_before_the_first_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, option: str
) -> None:
    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the output paths were checked")

    monkeypatch.setattr(training.tasks.Task, "load_data", no_data)
    bad = tmp_path / "no" / "such" / "folder" / "out"
    assert training.main(["mnist-mlp", option, str(bad), *BASE]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and "does not exist" in lines[0]
    assert training.main(["mnist-mlp", option, str(tmp_path), *BASE]) == 2
    assert "is a directory, expected a file" in _err_lines(capsys)[0]


def test_a_missing_resume_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert training.main(["mnist-mlp", "--resume", str(tmp_path / "x.st"), *BASE]) == 2
    assert _err_lines(capsys) == [
        f"needle train: error: option 'resume': {tmp_path / 'x.st'} is not a file"
    ]


def test_unknown_backend_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["mnist-mlp", "--no-progress", "--backend", "nosuchbackend"]
    assert training.main(argv) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and "'nosuchbackend' is not installed" in lines[0]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_tracebacks_only_with_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, how: str
) -> None:
    argv = ["mnist-mlp", "--data-dir", str(tmp_path / "nowhere"), *BASE]
    monkeypatch.delenv("NEEDLE_DEBUG", raising=False)
    assert training.main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err
    if how == "flag":
        argv.append("--debug")
    else:
        monkeypatch.setenv("NEEDLE_DEBUG", "1")
    assert training.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "TrainConfigError" in err
    assert err.strip().splitlines()[-1].startswith("needle train: error: option 'data_dir'")


@pytest.mark.parametrize("signum", [None, signal.SIGTERM])
def test_interrupt_prints_one_line_saying_what_was_saved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch, signum
) -> None:
    real = trainer.epoch_seed

    def stop_in_second_epoch(seed: int, epoch: int) -> int:
        if epoch == 1:
            if signum is None:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)  # handled like Ctrl-C
        return real(seed, epoch)

    monkeypatch.setattr(trainer, "epoch_seed", stop_in_second_epoch)
    ck = tmp_path / "run.st"
    argv = ["mnist-mlp", "--epochs", "3", "--limit-batches", "1", "--checkpoint", str(ck)]
    assert training.main([*argv, *BASE]) == 130
    lines = _err_lines(capsys)
    assert lines == [
        f"needle train: interrupted; stopped during epoch 2; {ck} holds the state after "
        f"epoch 1 (continue with --resume {ck})"
    ]
    assert ndl.load(ck)["epoch"] == 1
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_interrupt_without_checkpoint_says_nothing_was_saved(
    capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    def stop(seed: int, epoch: int) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "epoch_seed", stop)
    assert training.main(["mnist-mlp", "--epochs", "1", "--limit-batches", "1", *BASE]) == 130
    assert _err_lines(capsys) == [
        "needle train: interrupted; stopped during epoch 1; nothing was saved "
        "(no --checkpoint given)"
    ]


def _linear_pair():
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(3, 2, device="numpy"))
    opt = optim.Adam(model.parameters(), lr=0.01)
    x = ndl.Tensor(np.ones((4, 3), np.float32), device="numpy")
    model(x).sum().backward()
    opt.step()
    return model, opt


def test_resume_is_all_or_nothing_when_the_optimizer_state_does_not_fit(tmp_path: Path) -> None:
    model, opt = _linear_pair()
    path = tmp_path / "c.st"
    ckpt_mod.save_checkpoint(path, task="t", model=model, opt=opt, epoch=1, seed=0)

    np.random.seed(1)
    other = nn.Sequential(nn.Linear(3, 2, device="numpy"))
    before = {k: v.numpy().copy() for k, v in other.state_dict().items()}
    # an optimizer over one parameter only: the checkpoint's slot for parameter 1 has no home
    other_opt = optim.Adam(other.parameters()[:1], lr=0.5)
    rng = np.random.get_state()[1].copy()
    with pytest.raises(KeyError, match=r"unexpected key 'm\.1'"):
        ckpt_mod.load_checkpoint(path, task="t", model=other, opt=other_opt)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k], err_msg=k)
    assert other_opt.lr == 0.5 and other_opt.t == 0 and not other_opt._slots["m"]
    np.testing.assert_array_equal(np.random.get_state()[1], rng)
