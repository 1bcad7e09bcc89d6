"""What ``needle train TASK --distributed`` does differently (called from training/trainer.py).

* ``--batch-size`` stays the *global* batch: each of the N ranks takes ``batch_size / N``
  examples per step from its :class:`~needle.data.DistributedSampler` shard, and DDP
  averages the gradients, so a step is the single-process step of the same batch (up to
  float reduction order) and the learning rate needs no change.
* Training steps run eagerly (``compile=False``): ``needle.compile`` cannot capture the
  gradient all-reduce yet.
* Only rank 0 prints, shows the progress bar and writes checkpoints and metrics; every
  rank reads ``--resume``.
* Evaluation splits are sharded without padding (rank r takes examples r, r + N, ...)
  and the loss/accuracy sums are all-reduced, so the metrics are those of the whole set
  (the training epoch's logged loss and accuracy are reduced the same way).
* The model is wrapped in DistributedDataParallel after the task builds it; its
  ``state_dict`` is the bare model's, so checkpoints load with or without --distributed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..autograd import Tensor


class DistributedTask:
    """A task as ``trainer.train`` sees it, with the data-parallel changes made around it.

    ``train(config, task=DistributedTask(get_task(name)), hooks=...)`` runs it; nothing in
    the epoch loop itself changes. Every other attribute is the wrapped task's.
    """

    def __init__(self, task: Any) -> None:
        from . import init, rank, world_size

        init()
        self.task = task
        self.rank, self.world = rank(), world_size()
        self.is_primary = self.rank == 0
        self.samplers: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.task, name)

    def configure(self, config: Any) -> Any:
        """The wrapped task's config with this rank's share of the batch; a progress bar
        on rank 0 only."""
        config = self.task.configure(config)
        if config.batch_size % self.world:
            from ..training.config import TrainConfigError

            raise TrainConfigError(
                f"--distributed: option 'batch_size' ({config.batch_size}) is the global "
                f"batch and must divide by the number of ranks ({self.world})"
            )
        # needle.compile cannot capture the gradient all-reduce (yet): steps run eagerly
        eager = {"compile": False} if hasattr(config, "compile") else {}
        return dataclasses.replace(
            config,
            batch_size=config.batch_size // self.world,
            progress=config.progress and self.is_primary,
            **eager,
        )

    def load_data(self, config: Any, device: Any) -> Any:
        """The task's loaders, each given this rank's part (train: shuffled shards)."""
        from ..data import DataLoader, DistributedSampler

        data = self.task.load_data(config, device)
        if not isinstance(data, dict) or not isinstance(data.get("train"), DataLoader):
            from ..training.config import TrainConfigError

            raise TrainConfigError(
                f"--distributed: task {self.task.name!r} does not load its data through "
                "DataLoaders; only the image tasks (mnist-*, cifar10-*) support it so far"
            )
        for split, loader in data.items():
            if not isinstance(loader, DataLoader):
                continue
            sampler: Any
            if split == "train":
                sampler = DistributedSampler(loader.dataset, self.world, self.rank)
                self.samplers.append(sampler)
                loader.shuffle = False
            else:
                sampler = np.arange(self.rank, len(loader.dataset), self.world)
            loader.sampler = sampler
        return data

    def build_model(self, config: Any, device: Any, data: Any) -> Any:
        """The task's model in :class:`DistributedDataParallel` (rank 0's weights)."""
        from .ddp import DistributedDataParallel

        return DistributedDataParallel(self.task.build_model(config, device, data))

    def run_epoch(self, *args: Any, **kwargs: Any) -> Any:
        """The task's pass over this rank's shard, its result reduced over all ranks."""
        if kwargs.get("train"):
            # the epoch's order: one draw from needle's generator, which the trainer seeds
            # identically on every rank at each epoch (so --resume gets the same order)
            from .. import random as _random

            key = int(_random.randint(0, 2**31 - 1, None))
            for s in self.samplers:
                s.set_epoch(key)
        return self.reduce(self.task.run_epoch(*args, **kwargs))

    def reduce(self, result: Any) -> Any:
        """One EpochResult for all ranks: sums of loss, hits and examples; slowest time."""
        from . import all_reduce

        n = result.examples
        sums = Tensor(
            np.array([result.loss * n, result.accuracy * n, n], dtype=np.float64),
            dtype="float64",
            requires_grad=False,
        )
        total = all_reduce(sums).numpy()
        slowest = all_reduce(
            Tensor(np.array([result.seconds]), dtype="float64", requires_grad=False), "max"
        ).numpy()
        examples = max(int(total[2] + 0.5), 1)
        return dataclasses.replace(
            result,
            loss=float(total[0] / examples),
            accuracy=float(total[1] / examples),
            examples=examples,
            seconds=float(slowest[0]),
        )


def train_distributed(config: Any) -> dict[str, Any]:
    """``needle train TASK --distributed``: ``trainer.train`` with the changes above."""
    from ..training.loops import TrainHooks
    from ..training.tasks import get_task
    from ..training.trainer import train

    task = DistributedTask(get_task(config.task))
    return train(config, task=task, hooks=TrainHooks(is_primary=task.is_primary))  # type: ignore[arg-type]
