"""``train(config)``: the one epoch loop of ``needle train``, for every task."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .checkpoint import epoch_seed, load_checkpoint, save_checkpoint
from .config import TaskConfig, TrainConfig, TrainConfigError
from .loops import EpochResult, TrainHooks
from .tasks import Task, get_task

__all__ = ["make_optimizer", "train"]


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
    config: TrainConfig, *, task: Task | None = None, hooks: TrainHooks | None = None
) -> dict[str, Any]:
    """Train ``config.task`` as ``config`` says; log each epoch and return the final metrics.

    Every epoch ``e`` first seeds needle's generator with ``epoch_seed(seed, e)`` and
    sets the learning rate of ``e`` on the cosine schedule, so a run resumed from a
    checkpoint draws and steps exactly as an uninterrupted one.

    Args:
        task: run this task object instead of looking ``config.task`` up (its name must
            match ``config.task``); tests pass small fakes.
        hooks: extension points of a multi-process run (see :class:`TrainHooks`).

    Returns:
        ``task``, ``backend``, ``epochs``, ``seconds``, ``test_loss``, ``train_loss`` (if an
        epoch ran), then the task's metrics prefixed by split (``test_accuracy``...).

    Raises:
        TrainConfigError: no such task, or ``task`` disagrees with ``config.task``.
    """
    import needle as ndl
    from needle import optim

    if task is None:
        task = get_task(config.task)
    elif task.name != config.task:
        raise TrainConfigError(f"option 'task' is {config.task!r} but the task is {task.name!r}")
    hooks = hooks or TrainHooks()
    log = hooks.log if hooks.is_primary else (lambda msg: None)
    cfg = task.configure(config)
    device = ndl.device(cfg.backend) if cfg.backend else ndl.default_device()
    ndl.manual_seed(cfg.seed)
    data = task.load_data(cfg, device)
    model = task.build_model(cfg, device, data)
    opt = make_optimizer(cfg, model.parameters())
    # epoch e runs at lr_at(e): the first at lr, the last (epochs - 1) at 5% of it
    schedule = optim.CosineLR(opt, total_steps=max(cfg.epochs - 1, 1), min_lr=0.05 * cfg.lr)
    start_epoch = 0
    if cfg.resume:
        ckpt = load_checkpoint(cfg.resume, task=task.name, model=model, opt=opt, device=device)
        start_epoch = int(ckpt["epoch"])
        log(f"resumed from {cfg.resume} after epoch {start_epoch}")
    log(
        f"{task.name}: backend {device}, {sum(p.size for p in model.parameters()):,} "
        f"parameters, epochs {cfg.epochs}, batch {cfg.batch_size}, {cfg.optimizer} "
        f"lr {cfg.lr}"
    )
    began = time.perf_counter()
    last: EpochResult | None = None
    for epoch in range(start_epoch, cfg.epochs):
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
