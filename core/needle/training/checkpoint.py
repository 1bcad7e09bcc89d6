"""Training checkpoints: model, optimizer, epoch and RNG state in one safetensors file."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import nn, optim
from ..random import get_state, set_state
from ..serialization import load, save


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch``'s random draws (shuffle, dropout, augmentation).

    Derived from ``(seed, epoch)`` alone, so a resumed run draws what an uninterrupted
    one would.
    """
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    task: str,
    model: nn.Module,
    opt: optim.Optimizer,
    epoch: int,
    seed: int,
) -> None:
    """Write the state after ``epoch`` completed epochs (atomically)."""
    save(
        {
            "task": task,
            "epoch": epoch,
            "seed": seed,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": get_state(),
        },
        path,
    )


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    task: str,
    model: nn.Module,
    opt: optim.Optimizer,
    device: Any = None,
) -> dict[str, Any]:
    """Restore ``model``, ``opt`` and the random generator; returns the checkpoint dict.

    Raises:
        ValueError: the checkpoint was written by another task, or is corrupt.
        KeyError: its model state lacks a parameter of ``model`` (or has an extra one).
    """
    ckpt = load(path, device=device)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "epoch" not in ckpt:
        raise ValueError(f"{os.fspath(path)!r} is not a `needle train` checkpoint")
    if ckpt.get("task") != task:
        raise ValueError(
            f"{os.fspath(path)!r} was written by task {ckpt.get('task')!r}, not {task!r}"
        )
    for key in ("optimizer", "rng"):
        if not isinstance(ckpt.get(key), dict):
            raise ValueError(f"{os.fspath(path)!r}: key {key!r} is missing or not a dict")
    # all or nothing: if the optimizer state or the RNG state does not fit, the model
    # (and the optimizer) get back what they had
    model_before = {k: v.realize_cached_data() for k, v in model.state_dict().items()}
    opt_before = dict(vars(opt))
    slots_before = {k: dict(v) for k, v in getattr(opt, "_slots", {}).items()}
    rng_before = get_state()
    try:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        set_state(ckpt["rng"])
    except BaseException:
        model.load_state_dict(model_before)
        vars(opt).clear()
        vars(opt).update(opt_before)
        if slots_before:
            opt._slots = slots_before
        set_state(rng_before)
        raise
    return ckpt
