"""MNIST from its IDX files (gzip-compressed, as distributed)."""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._paths import find_data_dir
from ..dataset import Dataset

_FILES = {
    True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path: Path, magic: int) -> np.ndarray:
    opener: Any = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 8 or int.from_bytes(data[:4], "big") != magic:
        raise ValueError(f"MNIST: {path} is not an IDX file with magic number {magic:#x}")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"MNIST: {path} holds {body.size} bytes of data, expected {dims}")
    return body.reshape(dims)


def parse_mnist(
    image_filename: str | os.PathLike[str], label_filename: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 ``(N, 784)`` in [0, 1] and labels as uint8 ``(N,)`` (course hw0)."""
    images = _read_idx(Path(image_filename), 0x00000803)
    labels = _read_idx(Path(label_filename), 0x00000801)
    if len(images) != len(labels):
        raise ValueError(f"MNIST: {len(images)} images but {len(labels)} labels")
    return images.reshape(len(images), -1).astype(np.float32) / 255.0, labels


class MNISTDataset(Dataset):
    """MNIST digits: ``x`` float32 (784,) in [0, 1], ``y`` the label.

    Args:
        image_filename, label_filename: the IDX files (the course's signature); when
            omitted, the standard files are looked up under ``root``, ``NEEDLE_DATA``
            and the repository's ``data/`` (folder ``mnist/``).
        transforms: applied to each image as ``(28, 28, 1)``.
        root: a folder holding the four standard files.
        train: the 60,000-image training split, else the 10,000-image test split.
    """

    def __init__(
        self,
        image_filename: str | None = None,
        label_filename: str | None = None,
        transforms: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None,
        *,
        root: str | os.PathLike[str] | None = None,
        train: bool = True,
    ) -> None:
        super().__init__(transforms)
        if image_filename is None or label_filename is None:
            images, labels = _FILES[train]
            folder = find_data_dir("mnist", (images, labels), root)
            image_filename, label_filename = str(folder / images), str(folder / labels)
        self.X, self.y = parse_mnist(image_filename, label_filename)

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, index: Any) -> tuple[np.ndarray, np.ndarray]:
        """Image(s) and label(s) at ``index`` (an int, a slice or an index array)."""
        x = self.X[index]
        if self.transforms:
            if x.ndim == 1:
                x = self.apply_transforms(x.reshape(28, 28, 1)).reshape(784)
            else:
                x = np.stack([self.apply_transforms(r.reshape(28, 28, 1)).reshape(784) for r in x])
        return x, self.y[index]

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.transforms:
            return super().get_batch(indices)
        return self.X[indices], self.y[indices]
