"""needle.data: datasets, the DataLoader and image transforms (course-compatible)."""

from __future__ import annotations

from .dataset import Dataset, NDArrayDataset
from .datasets import (
    CIFAR10Dataset,
    Corpus,
    Dictionary,
    MNISTDataset,
    batchify,
    get_batch,
    load_cifar_batch,
    parse_mnist,
)
from .loader import DataLoader
from .sampler import DistributedSampler
from .transforms import RandomCrop, RandomFlipHorizontal, Transform

__all__ = [
    "CIFAR10Dataset",
    "Corpus",
    "DataLoader",
    "Dataset",
    "Dictionary",
    "DistributedSampler",
    "MNISTDataset",
    "NDArrayDataset",
    "RandomCrop",
    "RandomFlipHorizontal",
    "Transform",
    "batchify",
    "get_batch",
    "load_cifar_batch",
    "parse_mnist",
]
