"""``train(config)``: the one epoch loop of ``needle train``, for every task."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import epoch_seed, load_checkpoint, save_checkpoint
from .config import TaskConfig, TrainConfig, TrainConfigError
from .loops import EpochResult, TrainHooks
from .tasks import Task, get_task

__all__ = ["TrainProgress", "check_paths", "make_optimizer", "train"]


@dataclass
class TrainProgress:
    """What a run has done so far: the CLI reports it when the run is interrupted."""

    checkpoint: str | None = None
    saved_epoch: int | None = None
    epoch: int | None = None

    def saved_text(self) -> str:
        """One sentence: which checkpoint holds which epoch, or that nothing was saved."""
        where = f" during epoch {self.epoch}" if self.epoch is not None else ""
        if self.checkpoint is None:
            return f"stopped{where}; nothing was saved (no --checkpoint given)"
        if self.saved_epoch is None:
            return f"stopped{where}; nothing was saved yet to {self.checkpoint}"
        return (
            f"stopped{where}; {self.checkpoint} holds the state after epoch "
            f"{self.saved_epoch} (continue with --resume {self.checkpoint})"
        )


def _writable_file(option: str, path: Any) -> None:
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise TrainConfigError(f"option {option!r}: {path} is a directory, expected a file")
    folder = target.parent
    if not folder.is_dir():
        raise TrainConfigError(f"option {option!r}: folder {folder} of {path} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TrainConfigError(f"option {option!r}: folder {folder} of {path} is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise TrainConfigError(f"option {option!r}: {path} is not writable")


def check_paths(config: TrainConfig) -> None:
    """Refuse, before any data is read, paths the run could not use.

    Raises:
        TrainConfigError: ``data_dir`` is not a folder, ``resume`` is not a file, or
            ``checkpoint``/``metrics_json`` cannot be written (each names the option).
    """
    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        raise TrainConfigError(f"option 'data_dir': {config.data_dir} is not a folder")
    if config.resume is not None and not Path(config.resume).is_file():
        raise TrainConfigError(f"option 'resume': {config.resume} is not a file")
    for option in ("checkpoint", "metrics_json"):
        path = getattr(config, option)
        if path is not None:
            _writable_file(option, path)


def make_optimizer(config: TaskConfig, params: list[Any]) -> Any:
    """The optimizer ``config`` names, over ``params``."""
    from .. import optim

    wd = config.weight_decay
    if config.optimizer == "sgd":
        return optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=wd)
    return optim.Adam(params, lr=config.lr, weight_decay=wd)


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def train(
    config: TrainConfig,
    *,
    task: Task | None = None,
    hooks: TrainHooks | None = None,
    progress: TrainProgress | None = None,
) -> dict[str, Any]:
    """Train ``config.task`` as ``config`` says; log each epoch and return the final metrics.

    Every epoch ``e`` first seeds needle's generator with ``epoch_seed(seed, e)`` and
    sets the learning rate of ``e`` on the cosine schedule, so a run resumed from a
    checkpoint draws and steps exactly as an uninterrupted one.

    Args:
        task: run this task object instead of looking ``config.task`` up (its name must
            match ``config.task``); tests pass small fakes.
        hooks: extension points of a multi-process run (see :class:`TrainHooks`).
        progress: filled in as the run goes (the epoch running, the last one saved).

    Returns:
        ``task``, ``backend``, ``epochs``, ``seconds``, ``test_loss``, ``train_loss`` (if an
        epoch ran), then the task's metrics prefixed by split (``test_accuracy``...).

    Raises:
        TrainConfigError: no such task, or ``task`` disagrees with ``config.task``; a
            path the run cannot use (checked before any data is read, see
            :func:`check_paths`); data or a checkpoint that cannot be read.
    """
    import needle as ndl
    from needle import optim

    if task is None:
        task = get_task(config.task)
    elif task.name != config.task:
        raise TrainConfigError(f"option 'task' is {config.task!r} but the task is {task.name!r}")
    hooks = hooks or TrainHooks()
    progress = progress if progress is not None else TrainProgress()
    log = hooks.log if hooks.is_primary else (lambda msg: None)
    cfg = task.configure(config)
    check_paths(cfg)
    if cfg.checkpoint is not None:
        progress.checkpoint = os.fspath(cfg.checkpoint)
    device = ndl.device(cfg.backend) if cfg.backend else ndl.default_device()
    ndl.manual_seed(cfg.seed)
    try:
        data = task.load_data(cfg, device)
    except (ValueError, KeyError) as e:  # a data file that is not what it should be
        if isinstance(e, TrainConfigError):
            raise
        raise TrainConfigError(f"reading the data of {task.name} failed: {e}") from e
    model = task.build_model(cfg, device, data)
    opt = make_optimizer(cfg, model.parameters())
    # epoch e runs at lr_at(e): the first at lr, the last (epochs - 1) at 5% of it
    schedule = optim.CosineLR(opt, total_steps=max(cfg.epochs - 1, 1), min_lr=0.05 * cfg.lr)
    start_epoch = 0
    if cfg.resume:
        try:
            ckpt = load_checkpoint(cfg.resume, task=task.name, model=model, opt=opt, device=device)
        except (ValueError, KeyError, TypeError) as e:
            raise TrainConfigError(f"cannot resume from {cfg.resume}: {e}") from e
        start_epoch = int(ckpt["epoch"])
        if cfg.checkpoint and os.path.realpath(cfg.checkpoint) == os.path.realpath(cfg.resume):
            progress.saved_epoch = start_epoch
        log(f"resumed from {cfg.resume} after epoch {start_epoch}")
    log(
        f"{task.name}: backend {device}, {sum(p.size for p in model.parameters()):,} "
        f"parameters, epochs {cfg.epochs}, batch {cfg.batch_size}, {cfg.optimizer} "
        f"lr {cfg.lr}"
    )
    began = time.perf_counter()
    last: EpochResult | None = None
    for epoch in range(start_epoch, cfg.epochs):
        progress.epoch = epoch + 1
        ndl.manual_seed(epoch_seed(cfg.seed, epoch))
        opt.lr = schedule.lr_at(epoch)  # a function of the epoch alone, so resume agrees
        desc = f"epoch {epoch + 1}/{cfg.epochs}"
        last = task.run_epoch(
            model,
            opt,
            data,
            "train",
            train=True,
            config=cfg,
            device=device,
            desc=desc,
            hooks=hooks,
        )
        log(
            f"{desc}: {task.describe(last)} "
            f"({last.examples / last.seconds:.0f} samples/s, {last.seconds:.1f} s)"
        )
        if cfg.checkpoint and hooks.is_primary:
            save_checkpoint(
                cfg.checkpoint,
                task=task.name,
                model=model,
                opt=opt,
                epoch=epoch + 1,
                seed=cfg.seed,
            )
            progress.saved_epoch = epoch + 1
    progress.epoch = None
    evaluated = {
        split: task.run_epoch(
            model, None, data, split, train=False, config=cfg, device=device, desc=split
        )
        for split in task.eval_splits
    }
    seconds = time.perf_counter() - began
    metrics: dict[str, Any] = {
        "task": task.name,
        "backend": str(device),
        "epochs": cfg.epochs,
        "seconds": round(seconds, 2),
        "test_loss": evaluated["test"].loss,
    }
    if last is not None:
        metrics["train_loss"] = last.loss
    for split, result in evaluated.items():
        metrics.update({f"{split}_{k}": v for k, v in task.metrics(result).items()})
    metrics.update(task.extra_metrics(data))
    if last is not None:
        metrics.update({f"train_{k}": v for k, v in task.metrics(last).items()})
    log("final: " + ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items()))
    if cfg.metrics_json and hooks.is_primary:
        Path(cfg.metrics_json).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
