"""MNIST from its IDX files (gzip-compressed, as distributed)."""

from __future__ import annotations

import gzip
import os
import zlib
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


# What each IDX file of MNIST may hold: its magic number, the sizes after the first
# (image rows and columns) and the largest count (the 60,000-image training split).
_IDX_LAYOUT = {0x00000803: ("images", (28, 28)), 0x00000801: ("labels", ())}
_MAX_ITEMS = 60_000
_CHUNK = 1 << 20


def _read_exact(f: Any, size: int, path: Path, what: str) -> bytes:
    """``size`` bytes of ``f`` read in bounded chunks (so a bomb never inflates past it)."""
    out = bytearray()
    while len(out) < size:
        chunk = f.read(min(_CHUNK, size - len(out)))
        if not chunk:
            raise ValueError(
                f"MNIST: {path} ends after {len(out)} bytes of {what}, expected {size}"
            )
        out += chunk
    return bytes(out)


def _read_idx(path: Path, magic: int) -> np.ndarray:
    kind, tail = _IDX_LAYOUT[magic]
    sizes = "(N" + "".join(f", {n}" for n in tail) + ")"
    expected = (
        f"an IDX file of MNIST {kind} (magic {magic:#010x}, sizes {sizes}, N <= {_MAX_ITEMS})"
    )
    opener: Any = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = _read_exact(f, 4, path, "header")
            if int.from_bytes(head, "big") != magic:
                raise ValueError(f"MNIST: {path} is not {expected}: magic {head.hex()}")
            ndim = head[3]
            dims = [int.from_bytes(_read_exact(f, 4, path, "header"), "big") for _ in range(ndim)]
            if ndim != 1 + len(tail) or tuple(dims[1:]) != tail or dims[0] > _MAX_ITEMS:
                raise ValueError(f"MNIST: {path} is not {expected}: its header says sizes {dims}")
            size = int(np.prod(dims))
            body = _read_exact(f, size, path, "data")
            if f.read(1):
                raise ValueError(f"MNIST: {path} holds more than the {size} bytes its header gives")
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # these name the file already
    except (OSError, EOFError, zlib.error) as exc:  # corrupt gzip, truncated stream...
        raise ValueError(f"MNIST: {path} could not be read as {expected}: {exc}") from exc
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def parse_mnist(
    image_filename: str | os.PathLike[str], label_filename: str | os.PathLike[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 ``(N, 784)`` in [0, 1] and labels as uint8 ``(N,)`` (course hw0)."""
    images = _read_idx(Path(image_filename), 0x00000803)
    labels = _read_idx(Path(label_filename), 0x00000801)
    if len(images) != len(labels):
        raise ValueError(
            f"MNIST: {image_filename} holds {len(images)} images but {label_filename} "
            f"{len(labels)} labels; expected the same number"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"MNIST: {label_filename} holds label {labels.max()}, expected 0..9")
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
