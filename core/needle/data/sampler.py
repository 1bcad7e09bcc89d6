"""``DistributedSampler``: each rank's share of a data set, for ``DataLoader(sampler=...)``."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np


class DistributedSampler:
    """The indices of ``dataset`` that belong to one rank, for one epoch.

    Every rank draws the same permutation for a given ``seed`` and epoch (from its own
    ``numpy.random.default_rng(seed + epoch)``, not needle's global generator, so the
    ranks agree whatever else they draw), then takes every ``num_replicas``-th index
    starting at its ``rank``: the shards are disjoint and together cover the epoch.

    Equal length on every rank (data-parallel steps must match):

    * ``drop_last=False`` (default): the permutation is *padded* by repeating its first
      indices until its length divides by ``num_replicas``; each rank gets
      ``ceil(n / num_replicas)`` indices, and at most ``num_replicas - 1`` examples are
      seen twice per epoch.
    * ``drop_last=True``: the permutation's tail is *dropped*; each rank gets
      ``floor(n / num_replicas)`` indices, and up to ``num_replicas - 1`` examples are
      skipped this epoch (different ones each epoch when shuffling).

    Call :meth:`set_epoch` at the start of every epoch so that the order changes.

    Args:
        dataset: a data set (anything with ``len``) or its length as an int.
        num_replicas, rank: default ``needle.distributed.world_size()`` and ``rank()``.
        shuffle: permute (else keep the data set's order, still sharded).
        seed: the base seed, the same on every rank.
        drop_last: drop instead of pad, as above.
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        n = dataset if isinstance(dataset, int) else len(dataset)
        if num_replicas is None or rank is None:
            from .. import distributed

            num_replicas = distributed.world_size() if num_replicas is None else num_replicas
            rank = distributed.rank() if rank is None else rank
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(
                f"DistributedSampler: num_replicas must be an int >= 1, got {num_replicas!r}"
            )
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(
                f"DistributedSampler: rank must be in 0..{num_replicas - 1}, got {rank!r}"
            )
        if n < 0:
            raise ValueError(f"DistributedSampler: negative data set length {n}")
        self.n, self.num_replicas, self.rank = n, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.epoch = 0
        if drop_last:
            self.num_samples = n // num_replicas
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (call it before iterating, every epoch)."""
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(
                f"DistributedSampler.set_epoch: epoch must be an int >= 0, got {epoch!r}"
            )
        self.epoch = epoch

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, as an int64 array."""
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(self.n)
        else:
            order = np.arange(self.n)
        if self.total_size > self.n:  # pad by wrapping around (several times if tiny)
            reps = math.ceil(self.total_size / max(self.n, 1))
            order = np.tile(order, reps)[: self.total_size] if self.n else order
        else:
            order = order[: self.total_size]
        return order[self.rank : self.total_size : self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(n={self.n}, rank={self.rank}/{self.num_replicas}, "
            f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
            f"epoch={self.epoch})"
        )
