"""Shared helpers of the course-compatibility suite (import as ``course.helpers``)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def mnist_dir() -> Path:
    from needle.data._paths import find_data_dir

    return find_data_dir("mnist", ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"))


def read_idx_bytes(path: Path, header: int) -> np.ndarray:
    """The raw bytes of an IDX file after its header (the MNIST format, read by hand)."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=header)
