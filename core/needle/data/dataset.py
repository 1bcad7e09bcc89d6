"""``Dataset`` and ``NDArrayDataset``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


class Dataset:
    """A sized collection of examples; ``dataset[i]`` is a tuple of NumPy arrays.

    Args:
        transforms: functions applied in order to the first array of each example
            (the input), as in the course.

    Subclasses implement ``__len__`` and ``__getitem__``; they may override
    :meth:`get_batch` to fetch many examples at once (the DataLoader calls it), and
    :meth:`get_rows` for a run of consecutive examples (an unshuffled pass).
    """

    def __init__(
        self, transforms: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None
    ) -> None:
        self.transforms = list(transforms) if transforms else []

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError

    def apply_transforms(self, x: np.ndarray) -> np.ndarray:
        """``x`` passed through every transform in order."""
        for t in self.transforms:
            x = t(x)
        return x

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """The examples at ``indices``, stacked field by field."""
        items = [self[int(i)] for i in indices]
        if not isinstance(items[0], tuple):
            return (np.stack(items),)
        return tuple(np.stack(field) for field in zip(*items))

    def get_rows(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """The examples ``start .. stop - 1`` (what an unshuffled DataLoader asks for):
        ``get_batch`` of those indices unless a subclass knows a faster way."""
        return self.get_batch(np.arange(start, stop))


class NDArrayDataset(Dataset):
    """Examples are the rows of one or more equally long arrays."""

    def __init__(self, *arrays: Any) -> None:
        super().__init__()
        if not arrays:
            raise ValueError("NDArrayDataset: need at least one array")
        self.arrays = [np.asarray(a.numpy() if hasattr(a, "numpy") else a) for a in arrays]
        n = len(self.arrays[0])
        if any(len(a) != n for a in self.arrays):
            raise ValueError(
                f"NDArrayDataset: arrays have different lengths {[len(a) for a in self.arrays]}"
            )

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: Any) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in self.arrays)

    def get_rows(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        if type(self).get_batch is not NDArrayDataset.get_batch:  # a subclass's own
            return super().get_rows(start, stop)
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"NDArrayDataset: rows {start}..{stop} of {len(self)}")
        return tuple(a[start:stop] for a in self.arrays)  # views, no gathered copies

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        n = len(indices)
        if (
            n > 1
            and indices[0] >= 0
            and indices[-1] < len(self)
            and indices[-1] - indices[0] == n - 1
            and bool((np.diff(indices) == 1).all())
        ):
            # consecutive rows (an unshuffled pass): views instead of gathered copies
            rows = slice(int(indices[0]), int(indices[-1]) + 1)
            return tuple(a[rows] for a in self.arrays)
        return tuple(a[indices] for a in self.arrays)
