"""needle.save / needle.load: round trips, atomicity, corrupt files."""

from __future__ import annotations

import os
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from needle import nn


def test_tensor_roundtrip(tmp_path: Path) -> None:
    x = ndl.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    ndl.save(x, tmp_path / "x.safetensors")
    y = ndl.load(tmp_path / "x.safetensors")
    assert isinstance(y, ndl.Tensor) and y.dtype == "float32"
    np.testing.assert_array_equal(y.numpy(), x.numpy())


def test_nested_checkpoint_roundtrip(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    ckpt = {
        "model": model.state_dict(),
        "epoch": 4,
        "lr": 0.5,
        "name": "mlp",
        "rng": {"state": 2**100 + 7},
        "order": np.arange(5),
    }
    ndl.save(ckpt, tmp_path / "c.safetensors")
    back = ndl.load(tmp_path / "c.safetensors")
    assert back["epoch"] == 4 and back["lr"] == 0.5 and back["name"] == "mlp"
    assert back["rng"]["state"] == 2**100 + 7
    np.testing.assert_array_equal(back["order"], np.arange(5))
    other = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    other.load_state_dict(back["model"])
    for (_, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_file_is_standard_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    ndl.save({"w": ndl.Tensor(np.ones(3, dtype=np.float32))}, tmp_path / "w.safetensors")
    np.testing.assert_array_equal(load_file(str(tmp_path / "w.safetensors"))["w"], np.ones(3))


def test_truncated_and_garbage_files_rejected(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    nn.Linear(4, 4).save(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"m\.safetensors"):
        ndl.load(path)
    path.write_bytes(b"\x80\x04cos\nsystem\n")  # a pickle header: never executed
    with pytest.raises(ValueError, match=r"m\.safetensors"):
        ndl.load(path)


def test_module_load_shape_mismatch_names_key(tmp_path: Path) -> None:
    nn.Linear(4, 4).save(str(tmp_path / "m.safetensors"))
    with pytest.raises(ValueError, match="'weight'"):
        nn.Linear(4, 5).load(str(tmp_path / "m.safetensors"))


def test_atomic_write_keeps_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.safetensors"
    ndl.save({"x": np.ones(2)}, path)
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        ndl.save({"x": np.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["a.safetensors"]  # no temporary file left behind


def test_unsupported_object_rejected(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object"):
        ndl.save({"x": object()}, tmp_path / "b.safetensors")
