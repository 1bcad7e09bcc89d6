"""``train(config)``: the one epoch loop of ``needle train``, for every task."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .checkpoint import epoch_seed, load_checkpoint, save_checkpoint
from .config import TrainConfig, TrainConfigError
from .loops import EpochResult, TrainHooks
from .tasks import Task, get_task

__all__ = ["make_optimizer", "train"]


def make_optimizer(config: TrainConfig, params: list[Any]) -> Any:
    """The optimizer ``config`` names, over ``params``."""
    from .. import optim

    if config.lr is None or config.optimizer is None:
        raise TrainConfigError("options 'lr' and 'optimizer' must be set (Task.configure does)")
    wd = config.weight_decay or 0.0
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
    config = task.configure(config)
    assert config.epochs is not None and config.lr is not None  # configure fills them
    device = ndl.device(config.backend) if config.backend else ndl.default_device()
    ndl.manual_seed(config.seed)
    data = task.load_data(config, device)
    model = task.build_model(config, device, data)
    opt = make_optimizer(config, model.parameters())
    # epoch e runs at lr_at(e): the first at lr, the last (epochs - 1) at 5% of it
    schedule = optim.CosineLR(opt, total_steps=max(config.epochs - 1, 1), min_lr=0.05 * config.lr)
    start_epoch = 0
    if config.resume:
        ckpt = load_checkpoint(config.resume, task=task.name, model=model, opt=opt, device=device)
        start_epoch = int(ckpt["epoch"])
        log(f"resumed from {config.resume} after epoch {start_epoch}")
    log(
        f"{task.name}: backend {device}, {sum(p.size for p in model.parameters()):,} "
        f"parameters, epochs {config.epochs}, batch {config.batch_size}, {config.optimizer} "
        f"lr {config.lr}"
    )
    began = time.perf_counter()
    last: EpochResult | None = None
    for epoch in range(start_epoch, config.epochs):
        ndl.manual_seed(epoch_seed(config.seed, epoch))
        opt.lr = schedule.lr_at(epoch)  # a function of the epoch alone, so resume agrees
        desc = f"epoch {epoch + 1}/{config.epochs}"
        last = task.run_epoch(
            model,
            opt,
            data,
            "train",
            train=True,
            config=config,
            device=device,
            desc=desc,
            hooks=hooks,
        )
        log(
            f"{desc}: {task.describe(last)} "
            f"({last.examples / last.seconds:.0f} samples/s, {last.seconds:.1f} s)"
        )
        if config.checkpoint and hooks.is_primary:
            save_checkpoint(
                config.checkpoint,
                task=task.name,
                model=model,
                opt=opt,
                epoch=epoch + 1,
                seed=config.seed,
            )
    evaluated = {
        split: task.run_epoch(
            model, None, data, split, train=False, config=config, device=device, desc=split
        )
        for split in task.eval_splits
    }
    seconds = time.perf_counter() - began
    metrics: dict[str, Any] = {
        "task": task.name,
        "backend": str(device),
        "epochs": config.epochs,
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
    if config.metrics_json and hooks.is_primary:
        Path(config.metrics_json).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
