"""Datasets, DataLoader, transforms and data lookup."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from needle import data


def test_ndarray_dataset_and_loader_batches() -> None:
    ds = data.NDArrayDataset(np.arange(10).reshape(10, 1), np.arange(10) * 2)
    loader = data.DataLoader(ds, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [b[0].shape[0] for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(batches[2][1].numpy(), [16, 18])
    assert not batches[0][0].requires_grad
    assert len(data.DataLoader(ds, batch_size=4, drop_last=True)) == 2
    assert len(list(data.DataLoader(ds, batch_size=4, drop_last=True))) == 2


def test_shuffle_is_seeded_and_a_permutation() -> None:
    ds = data.NDArrayDataset(np.arange(20))
    loader = data.DataLoader(ds, batch_size=5, shuffle=True)
    ndl.manual_seed(3)
    first = np.concatenate([b[0].numpy() for b in loader])
    ndl.manual_seed(3)
    again = np.concatenate([b[0].numpy() for b in loader])
    np.testing.assert_array_equal(first, again)
    assert sorted(first.tolist()) == list(range(20)) and first.tolist() != list(range(20))


def test_transforms() -> None:
    img = np.arange(2 * 3 * 1, dtype=np.float32).reshape(2, 3, 1)
    np.testing.assert_array_equal(data.RandomFlipHorizontal(p=1.0)(img), img[:, ::-1])
    np.testing.assert_array_equal(data.RandomFlipHorizontal(p=0.0)(img), img)
    ndl.manual_seed(0)
    img = np.arange(25, dtype=np.float32).reshape(5, 5, 1) + 1
    for _ in range(10):
        out = data.RandomCrop(padding=2)(img)
        assert out.shape == img.shape
        # a shifted window: every non-zero value sits at its original place minus one shift
        rows, cols = np.nonzero(out[:, :, 0])
        shifts = {
            ((out[r, c, 0] - 1) // 5 - r, (out[r, c, 0] - 1) % 5 - c) for r, c in zip(rows, cols)
        }
        assert len(shifts) == 1 and all(abs(s) <= 2 for s in next(iter(shifts)))


def test_mnist_real_files() -> None:
    test = data.MNISTDataset(train=False)
    assert len(test) == 10_000
    x, y = test[0]
    assert x.shape == (784,) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    assert int(y) == 7  # the first test digit of MNIST is a 7
    train_labels = data.MNISTDataset(train=True).y
    np.testing.assert_array_equal(
        np.bincount(train_labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    )


def test_missing_data_error_lists_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from needle.data import _paths

    monkeypatch.setenv("NEEDLE_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(_paths, "repo_data_dir", lambda: tmp_path / "repo")
    with pytest.raises(FileNotFoundError) as info:
        data.MNISTDataset(root=tmp_path / "given")
    text = str(info.value)
    assert str(tmp_path / "given") in text and str(tmp_path / "env" / "mnist") in text
    assert str(tmp_path / "repo" / "mnist") in text
    assert "NEEDLE_DATA" in text


def _write_cifar_fixture(folder: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=4).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump(
                {
                    b"batch_label": b"x",
                    b"data": images,
                    b"labels": labels,
                    b"filenames": [b"a.png"] * 4,
                },
                f,
                protocol=2,
            )
        written[name] = (images, labels)
    return written


def test_cifar10_fixture(tmp_path: Path, rng: np.random.Generator) -> None:
    written = _write_cifar_fixture(tmp_path / "cifar-10-batches-py", rng)
    train = data.CIFAR10Dataset(tmp_path, train=True, download=False)
    test = data.CIFAR10Dataset(tmp_path / "cifar-10-batches-py", train=False, download=False)
    assert len(train) == 20 and len(test) == 4
    images, labels = written["data_batch_2"]
    x, y = train[5]
    np.testing.assert_allclose(x, images[1].reshape(3, 32, 32) / 255.0, rtol=1e-6)
    assert int(y) == labels[1]
    batch = next(iter(data.DataLoader(test, batch_size=4)))
    assert batch[0].shape == (4, 3, 32, 32)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


def test_cifar10_rejects_malicious_pickle(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": [1]}, f)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        data.load_cifar_batch(path)
    assert not Path("pwned").exists()


def test_ptb_corpus_and_batches() -> None:
    corpus = data.Corpus(max_lines=20)
    d = corpus.dictionary
    with open(Path(data.datasets.ptb.find_data_dir("ptb", ["train.txt"])) / "train.txt") as f:
        first = f.readline().split()
    assert [d.idx2word[i] for i in corpus.train[: len(first) + 1]] == [*first, "<eos>"]
    batches = data.batchify(np.arange(23), batch_size=4)
    np.testing.assert_array_equal(batches[:, 1], np.arange(5, 10))
    x, y = data.get_batch(batches, 1, bptt=3)
    assert x.shape == (3, 4) and y.shape == (12,)
    np.testing.assert_array_equal(x.numpy(), batches[1:4])
    np.testing.assert_array_equal(y.numpy(), batches[2:5].ravel())
    x, _ = data.get_batch(batches, 3, bptt=3)
    assert x.shape == (1, 4)


def test_repo_data_is_found_beside_the_package_never_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An in-tree (editable) needle finds <repo>/data; an installed copy finds none, even
    when run inside a clone: the working directory is not searched."""
    from needle.data import _paths

    clone = tmp_path / "clone"
    (clone / "data").mkdir(parents=True)
    (clone / "pyproject.toml").write_text('[project]\nname = "needle-core"\n')
    monkeypatch.chdir(clone)
    monkeypatch.setattr(_paths, "__file__", str(tmp_path / "site" / "needle" / "data" / "x.py"))
    assert _paths.repo_data_dir() is None
    monkeypatch.setattr(_paths, "__file__", str(clone / "core" / "needle" / "data" / "x.py"))
    assert _paths.repo_data_dir() == clone / "data"
    (clone / "data").rmdir()
    assert _paths.repo_data_dir() is None


@pytest.mark.parametrize(
    "indices",
    [[3, 4, 5, 6], [0, 1], [-3, -2, -1], [5, 4, 3], [2, 4, 6], [7], [1, 2, 4, 5], [9, 10, 11]],
)
def test_ndarray_dataset_get_batch_equals_fancy_indexing(indices):
    # consecutive rows come back as views, everything else gathered: same values either way
    x = np.arange(24, dtype=np.float32).reshape(12, 2)
    y = np.arange(12) % 3
    ds = data.NDArrayDataset(x, y)
    got = ds.get_batch(np.asarray(indices))
    np.testing.assert_array_equal(got[0], x[indices])
    np.testing.assert_array_equal(got[1], y[indices])


def test_ndarray_dataset_get_batch_out_of_range_raises():
    ds = data.NDArrayDataset(np.arange(12, dtype=np.float32))
    with pytest.raises(IndexError):
        ds.get_batch(np.asarray([10, 11, 12]))


def test_unshuffled_loader_reads_rows_and_keeps_values_and_dtypes() -> None:
    # an unshuffled pass asks for runs of rows: the same values as gathering them, cast to
    # the loader's dtype (labels keep their integer values), as constant tensors
    x = np.arange(30, dtype=np.float64).reshape(10, 3) / 7
    y = np.arange(10, dtype=np.int64) * 3
    flags = np.arange(10) % 2 == 0
    ds = data.NDArrayDataset(x, y, flags)
    for dtype in ("float32", "float64"):
        batches = list(data.DataLoader(ds, batch_size=4, dtype=dtype))
        assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
        for b, start in zip(batches, (0, 4, 8)):
            assert all(t.dtype == dtype and not t.requires_grad for t in b)
            np.testing.assert_array_equal(b[0].numpy(), x[start : start + 4].astype(dtype))
            np.testing.assert_array_equal(b[1].numpy(), y[start : start + 4])
            np.testing.assert_array_equal(b[2].numpy(), flags[start : start + 4])


def test_unshuffled_loader_uses_a_subclass_get_batch() -> None:
    class Doubled(data.NDArrayDataset):
        def get_batch(self, indices):
            return tuple(a[indices] * 2 for a in self.arrays)

    ds = Doubled(np.arange(6, dtype=np.float32))
    got = np.concatenate([b[0].numpy() for b in data.DataLoader(ds, batch_size=4)])
    np.testing.assert_array_equal(got, np.arange(6) * 2)


def test_loader_refuses_fields_a_tensor_cannot_hold() -> None:
    ds = data.NDArrayDataset(np.array([1 + 2j, 3j]))
    with pytest.raises(TypeError, match="complex"):
        list(data.DataLoader(ds, batch_size=2))


def test_ndarray_dataset_get_rows_out_of_range_raises() -> None:
    ds = data.NDArrayDataset(np.arange(12, dtype=np.float32))
    with pytest.raises(IndexError, match=r"rows 10\.\.13 of 12"):
        ds.get_rows(10, 13)
