"""CIFAR-10 from the standard ``cifar-10-batches-py`` layout, read without running pickles.

The batches are Python pickles. A pickle may name any importable callable, so they
are read with an Unpickler that only lets through the few globals a NumPy array and a
dict of bytes, lists and ints need; anything else (``os.system``...) is refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._paths import candidate_dirs, find_data_dir
from ..dataset import Dataset

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)

_ALLOWED = {
    ("builtins", "dict"),
    ("builtins", "list"),
    ("builtins", "bytes"),
    ("builtins", "str"),
    ("builtins", "int"),
    ("__builtin__", "dict"),
    ("__builtin__", "list"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),  # NumPy integer labels
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"CIFAR-10: refusing to load global {module}.{name} from a data file "
                "(only NumPy arrays, dicts, lists, bytes, str and int are allowed)"
            )
        return super().find_class(module, name)


_MAX_ROWS = 60_000  # the whole of CIFAR-10 in one file is the most a batch may hold


def _labels_of(path: Any, labels: Any, rows: int) -> np.ndarray:
    """``labels`` checked element by element (no nested lists, no huge shared structure)."""
    expected = f"{rows} integer labels in 0..9"
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(
                f"CIFAR-10: {path}: 'labels' is an array of {labels.dtype} {labels.shape}, "
                f"expected {expected}"
            )
        out = labels.astype(np.int64)
    elif isinstance(labels, list):
        if len(labels) != rows:
            raise ValueError(
                f"CIFAR-10: {path}: 'labels' has {len(labels)} entries, expected {expected}"
            )
        for i, v in enumerate(labels):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(
                    f"CIFAR-10: {path}: label {i} is a {type(v).__name__}, expected {expected}"
                )
        out = np.fromiter((int(v) if -(2**62) < v < 2**62 else -1 for v in labels), np.int64, rows)
    else:
        raise ValueError(
            f"CIFAR-10: {path}: 'labels' is a {type(labels).__name__}, expected {expected}"
        )
    if len(out) != rows:
        raise ValueError(f"CIFAR-10: {path}: 'labels' has {len(out)} entries, expected {expected}")
    if rows and (out.min() < 0 or out.max() > 9):
        raise ValueError(f"CIFAR-10: {path}: a label lies outside 0..9, expected {expected}")
    return out


def load_cifar_batch(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images uint8 ``(N, 3, 32, 32)`` and labels int64 ``(N,)``.

    The unpickled object is checked before anything is converted: a dict whose
    ``data`` is a uint8 array ``(N, 3072)`` and whose ``labels`` are ``N`` integers
    (Python or NumPy) in 0..9, N at most 60,000.

    Raises:
        pickle.UnpicklingError: the file names a global other than the allowed ones.
        ValueError: the file is not a readable pickle or does not have the CIFAR-10
            batch layout (the message names the file and what was expected).
    """
    with open(path, "rb") as f:
        raw = f.read()
    try:
        batch = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        if "refusing to load global" in str(exc):
            raise
        raise ValueError(f"CIFAR-10: {path} is not a readable pickle: {exc}") from exc
    except (
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        OverflowError,
        RecursionError,
    ) as exc:
        raise ValueError(f"CIFAR-10: {path} is not a readable pickle: {exc!r}") from exc
    layout = "a dict with 'data' (uint8 array (N, 3072)) and 'labels' (N integers)"
    if not isinstance(batch, dict):
        raise ValueError(f"CIFAR-10: {path} holds a {type(batch).__name__}, expected {layout}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or labels is None:
        raise ValueError(f"CIFAR-10: {path} lacks 'data' (array) or 'labels'; expected {layout}")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"CIFAR-10: {path}: data is {data.dtype} {data.shape}, expected {layout}")
    if data.shape[0] > _MAX_ROWS:
        raise ValueError(f"CIFAR-10: {path}: {data.shape[0]} images, expected at most {_MAX_ROWS}")
    return data.reshape(-1, 3, 32, 32), _labels_of(path, labels, data.shape[0])


def download_cifar10(dest: str | os.PathLike[str], url: str = URL, md5: str = MD5) -> Path:
    """Fetch and unpack the archive into ``dest``; check its MD5 first. Returns the folder.

    Raises:
        OSError: the download failed (no network...).
        ValueError: the checksum does not match.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=30) as response:
        blob = response.read()
    digest = hashlib.md5(blob).hexdigest()
    if digest != md5:
        raise ValueError(f"CIFAR-10: download from {url} has MD5 {digest}, expected {md5}")
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        members = [
            m
            for m in tar.getmembers()
            if m.isfile() and m.name.startswith(FOLDER + "/") and ".." not in m.name
        ]
        for m in members:
            target = dest / m.name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            if src is not None:
                target.write_bytes(src.read())
    return dest / FOLDER


class CIFAR10Dataset(Dataset):
    """CIFAR-10: ``x`` float32 (3, 32, 32) in [0, 1], ``y`` the label.

    Args:
        base_folder: a folder holding the batch files (or ``cifar-10-batches-py/``);
            otherwise ``NEEDLE_DATA`` and the repository's ``data/`` are searched.
        train: the five training batches, else the test batch.
        p: the course's argument (probability for transforms), kept for compatibility.
        transforms: applied to each image as ``(32, 32, 3)``.
        download: fetch the archive (with an MD5 check) when no folder has the files.
    """

    def __init__(
        self,
        base_folder: str | os.PathLike[str] | None = None,
        train: bool = True,
        p: float = 0.5,
        transforms: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None,
        download: bool = True,
    ) -> None:
        super().__init__(transforms)
        files = TRAIN_FILES if train else TEST_FILES
        hint = "CIFAR-10 is downloaded automatically where there is a network."
        try:
            folder = find_data_dir(FOLDER, files, base_folder, hint)
        except FileNotFoundError as missing:
            if not download:
                raise
            dest = candidate_dirs(FOLDER, base_folder)
            target = dest[0] if dest else Path.home() / ".cache" / "needle"
            try:
                folder = download_cifar10(target)
            except OSError as e:
                raise FileNotFoundError(f"{missing}\nDownload failed: {e}") from None
        parts = [load_cifar_batch(folder / f) for f in files]
        self.X = np.concatenate([x for x, _ in parts]).astype(np.float32) / 255.0
        self.y = np.concatenate([y for _, y in parts])

    def __len__(self) -> int:
        return len(self.X)

    def __getitem__(self, index: Any) -> tuple[np.ndarray, np.ndarray]:
        """Image(s) and label(s) at ``index`` (an int, a slice or an index array)."""
        x = self.X[index]
        if self.transforms:
            if x.ndim == 3:
                x = self.apply_transforms(x.transpose(1, 2, 0)).transpose(2, 0, 1)
            else:
                x = np.stack(
                    [self.apply_transforms(r.transpose(1, 2, 0)).transpose(2, 0, 1) for r in x]
                )
        return x, self.y[index]

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.transforms:
            return super().get_batch(indices)
        return self.X[indices], self.y[indices]
