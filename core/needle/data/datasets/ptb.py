"""Penn Treebank language modelling: ``Dictionary``, ``Corpus``, ``batchify``, ``get_batch``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ...autograd import Tensor
from .._paths import find_data_dir


class Dictionary:
    """A two-way map between words and integer ids, in order of first appearance."""

    def __init__(self) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []

    def add_word(self, word: str) -> int:
        """The id of ``word``, adding it if new."""
        if word not in self.word2idx:
            self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return self.word2idx[word]

    def __len__(self) -> int:
        return len(self.idx2word)


class Corpus:
    """The train, valid and test splits of PTB as id lists, over one :class:`Dictionary`.

    Args:
        base_dir: a folder holding ``train.txt``, ``valid.txt`` and ``test.txt``;
            otherwise ``NEEDLE_DATA`` and the repository's ``data/`` (``ptb/``) are searched.
        max_lines: read at most this many lines of each file.

    Each line is split on whitespace and ends with an ``<eos>`` token. ``train`` and
    ``test`` are read first, in the course's order, so their ids and the vocabulary they
    make are the course's; ``valid`` (which the course's ``Corpus`` does not read) comes
    last, and any word only it has gets an id after those. ``len(corpus.dictionary)`` is
    the vocabulary of the files read (10,000 for the full Penn Treebank, as in the course).
    """

    def __init__(
        self, base_dir: str | os.PathLike[str] | None = None, max_lines: int | None = None
    ) -> None:
        folder = find_data_dir("ptb", ("train.txt", "valid.txt", "test.txt"), base_dir)
        self.dictionary = Dictionary()
        # train then test, as the course reads them (so their ids are the course's);
        # valid last, so its new words only add ids after the course's vocabulary
        self.train = self.tokenize(folder / "train.txt", max_lines)
        self.test = self.tokenize(folder / "test.txt", max_lines)
        self.valid = self.tokenize(folder / "valid.txt", max_lines)

    def tokenize(self, path: str | os.PathLike[str], max_lines: int | None = None) -> list[int]:
        """The ids of the words of ``path`` (adding new words to the dictionary)."""
        ids: list[int] = []
        n = 0
        try:
            with open(Path(path), encoding="utf-8") as f:
                for n, line in enumerate(f):
                    if max_lines is not None and n >= max_lines:
                        break
                    ids.extend(self.dictionary.add_word(w) for w in [*line.split(), "<eos>"])
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"PTB: {path} is not UTF-8 text (bad byte at offset {exc.start} of a block "
                f"near line {n + 1}); expected the Penn Treebank's plain text files"
            ) from exc
        return ids


def batchify(data: Any, batch_size: int, device: Any = None, dtype: str = "float32") -> np.ndarray:
    """Cut a token id sequence into ``batch_size`` columns: ``(len // batch_size, batch_size)``.

    Trailing tokens that do not fill a row are dropped; column j is a contiguous stretch
    of the text (as in the course). ``device`` and ``dtype`` are accepted for the
    course's signature; the result is a NumPy array, turned into tensors by
    :func:`get_batch`.
    """
    data = np.asarray(data)
    nbatch = len(data) // batch_size
    if nbatch == 0:
        raise ValueError(f"batchify: {len(data)} tokens cannot fill one row of {batch_size}")
    return data[: nbatch * batch_size].reshape(batch_size, nbatch).T.astype(dtype)


def get_batch(
    batches: np.ndarray, i: int, bptt: int, device: Any = None, dtype: str | None = None
) -> tuple[Tensor, Tensor]:
    """Inputs rows ``i .. i+L`` and the next-token targets, with ``L = min(bptt, rows-1-i)``.

    Returns:
        ``data`` (L, batch_size) and ``target`` (L * batch_size,), constant tensors.
    """
    seq_len = min(bptt, len(batches) - 1 - i)
    if seq_len <= 0:
        raise ValueError(f"get_batch: start row {i} leaves no targets in {len(batches)} rows")
    dtype = dtype or str(batches.dtype)
    data = batches[i : i + seq_len]
    target = batches[i + 1 : i + 1 + seq_len].reshape(-1)
    return (
        Tensor(data, device=device, dtype=dtype, requires_grad=False),
        Tensor(target, device=device, dtype=dtype, requires_grad=False),
    )
