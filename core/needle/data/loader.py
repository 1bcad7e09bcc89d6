"""``DataLoader``: mini-batches of a Dataset as tuples of Tensors."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import random as _random
from ..autograd import Tensor
from .dataset import Dataset


class DataLoader:
    """Iterate over ``dataset`` in mini-batches.

    Args:
        dataset: a :class:`Dataset`.
        batch_size: examples per batch.
        shuffle: draw a new order at the start of each pass with
            ``np.random.permutation(len(dataset))`` (NumPy's global generator, as in the
            course; ``np.random.seed``/``needle.manual_seed`` make runs repeat).
        drop_last: skip a final batch smaller than ``batch_size``.
        sampler: an iterable of indices with ``len`` (e.g. a
            :class:`~needle.data.DistributedSampler`) that gives the order instead of
            ``shuffle``; the two cannot be combined.
        device, dtype: where and as what floating type the batch tensors are made;
            integer fields (labels) keep their values, stored in ``dtype``.

    Each batch is a tuple of constant Tensors (``requires_grad=False``), one per field.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        device: Any = None,
        dtype: str = "float32",
        sampler: Any = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: pass either shuffle=True or a sampler, not both")
        self.sampler = sampler
        self.dataset, self.batch_size = dataset, batch_size
        self.shuffle, self.drop_last = shuffle, drop_last
        self.device, self.dtype = device, dtype

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def batch_order(self) -> list[np.ndarray]:
        """The index arrays of this pass's batches (draws from the generator if shuffling)."""
        n = len(self.dataset)
        order = _random.permutation(n) if self.shuffle else np.arange(n)
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
            n = len(order)
        cuts = range(self.batch_size, n, self.batch_size)
        batches = np.array_split(order, list(cuts))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches = batches[:-1]
        return [b for b in batches if len(b)]

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        # An unshuffled pass asks for runs of rows (views where the dataset can).
        in_order = not self.shuffle and self.sampler is None
        for indices in self.batch_order():
            if in_order:
                fields = self.dataset.get_rows(int(indices[0]), int(indices[-1]) + 1)
            else:
                fields = self.dataset.get_batch(indices)
            yield tuple(
                Tensor(np.asarray(f), device=self.device, dtype=self.dtype, requires_grad=False)
                for f in fields
            )
