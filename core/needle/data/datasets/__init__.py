"""Data sets: MNIST, CIFAR-10, Penn Treebank."""

from __future__ import annotations

from .cifar10 import CIFAR10Dataset, load_cifar_batch
from .mnist import MNISTDataset, parse_mnist
from .ptb import Corpus, Dictionary, batchify, get_batch

__all__ = [
    "CIFAR10Dataset",
    "Corpus",
    "Dictionary",
    "MNISTDataset",
    "batchify",
    "get_batch",
    "load_cifar_batch",
    "parse_mnist",
]
