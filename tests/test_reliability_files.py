"""Files cannot hang, bloat or confuse the loaders: MNIST, CIFAR-10, PTB, checkpoints."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from needle import data

# --- MNIST -----------------------------------------------------------------------------


def _idx(magic: int, dims: list[int], body: bytes = b"") -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + body


def _gz(path: Path, *parts: bytes, zeros: int = 0) -> Path:
    with gzip.open(path, "wb", compresslevel=1) as f:
        for p in parts:
            f.write(p)
        block = bytes(1 << 20)
        for _ in range(zeros >> 20):
            f.write(block)
    return path


def _labels(tmp_path: Path, n: int) -> Path:
    return _gz(tmp_path / "labels.gz", _idx(0x801, [n], bytes(n)))


def _refused_in_bounded_memory(images: Path, labels: Path, match: str) -> None:
    """parse_mnist refuses the images with a ValueError matching ``match``, having
    allocated under 8 MB on the way."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            data.parse_mnist(images, labels)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak


def test_mnist_gzip_bomb_is_refused_from_its_header_with_bounded_memory(tmp_path: Path) -> None:
    # header claims 2**31 - 1 images of 28x28, followed by 64 MB of zeros (64 KB on disk)
    bomb = _gz(tmp_path / "bomb.gz", _idx(0x803, [2**31 - 1, 28, 28]), zeros=64 << 20)
    assert bomb.stat().st_size < 1 << 20
    _refused_in_bounded_memory(
        bomb, _labels(tmp_path, 1), r"bomb\.gz.*header says sizes \[2147483647, 28, 28\]"
    )


def test_mnist_trailing_data_past_the_header_sizes_is_refused(tmp_path: Path) -> None:
    # a plausible header (10 images) and 64 MB more than it promises
    bomb = _gz(tmp_path / "long.gz", _idx(0x803, [10, 28, 28], bytes(7840)), zeros=64 << 20)
    _refused_in_bounded_memory(
        bomb, _labels(tmp_path, 10), r"long\.gz holds more than the 7840 bytes"
    )


def test_mnist_wrong_image_size_in_header(tmp_path: Path) -> None:
    bad = _gz(tmp_path / "big.gz", _idx(0x803, [1, 4096, 4096]))
    with pytest.raises(ValueError, match=r"big\.gz is not an IDX file of MNIST images.*28, 28"):
        data.parse_mnist(bad, _labels(tmp_path, 1))


def test_mnist_corrupt_gzip_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt-images.gz"
    good = gzip.compress(_idx(0x803, [1, 28, 28], bytes(784)))
    bad.write_bytes(good[:-8] + bytes(8))  # wrong CRC and length
    with pytest.raises(ValueError, match=r"corrupt-images\.gz could not be read as an IDX file"):
        data.parse_mnist(bad, _labels(tmp_path, 1))
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"corrupt-images\.gz"):
        data.parse_mnist(bad, _labels(tmp_path, 1))


def test_mnist_truncated_and_mismatched_files(tmp_path: Path) -> None:
    short = _gz(tmp_path / "short.gz", _idx(0x803, [2, 28, 28], bytes(784)))
    with pytest.raises(ValueError, match=r"short\.gz ends after 784 bytes of data, expected 1568"):
        data.parse_mnist(short, _labels(tmp_path, 2))
    one = _gz(tmp_path / "one.gz", _idx(0x803, [1, 28, 28], bytes(784)))
    with pytest.raises(ValueError, match=r"one\.gz holds 1 images but .*labels\.gz 2 labels"):
        data.parse_mnist(one, _labels(tmp_path, 2))
    nine = _gz(tmp_path / "l.gz", _idx(0x801, [1], bytes([12])))
    with pytest.raises(ValueError, match=r"l\.gz holds label 12, expected 0\.\.9"):
        data.parse_mnist(one, nine)
    with pytest.raises(FileNotFoundError):
        data.parse_mnist(tmp_path / "absent.gz", nine)


def test_mnist_small_valid_files_still_parse(tmp_path: Path) -> None:
    pixels = bytes(range(256)) * 3 + bytes(16)  # 784 bytes
    x, y = data.parse_mnist(
        _gz(tmp_path / "i.gz", _idx(0x803, [1, 28, 28], pixels)),
        _gz(tmp_path / "l.gz", _idx(0x801, [1], bytes([7]))),
    )
    np.testing.assert_array_equal(x[0], np.frombuffer(pixels, np.uint8) / np.float32(255))
    assert y.tolist() == [7]


# --- CIFAR-10 --------------------------------------------------------------------------


def _cifar(path: Path, labels, n: int = 3) -> Path:
    images = np.arange(n * 3072, dtype=np.int64).reshape(n, 3072).astype(np.uint8)
    with open(path, "wb") as f:
        pickle.dump({b"data": images, b"labels": labels}, f, protocol=2)
    return path


def test_cifar_nested_shared_lists_are_refused_quickly(tmp_path: Path) -> None:
    # ~100 bytes that np.asarray would expand into 10**20 ints (the old loader hung)
    nested: list = [0] * 10
    for _ in range(19):
        nested = [nested] * 10
    path = _cifar(tmp_path / "nested_batch", nested, n=10)
    assert path.stat().st_size < 70_000
    code = textwrap.dedent(
        f"""
        from needle import data
        try:
            data.load_cifar_batch({str(path)!r})
        except ValueError as e:
            print("refused:", e)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout and "nested_batch" in out.stdout
    assert "label 0 is a list, expected 10 integer labels in 0..9" in out.stdout


def test_cifar_numpy_integer_labels_are_accepted(tmp_path: Path) -> None:
    labels = [np.int64(3), np.int32(0), np.uint8(9)]
    x, y = data.load_cifar_batch(_cifar(tmp_path / "np_labels", labels))
    assert y.dtype == np.int64 and y.tolist() == [3, 0, 9]
    assert x.shape == (3, 3, 32, 32)
    x, y = data.load_cifar_batch(_cifar(tmp_path / "arr", np.array([1, 2, 3], np.int16)))
    assert y.tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ([0.7, 1, 2], "label 0 is a float"),
        ([True, 1, 2], "label 0 is a bool"),
        ([1, 2], "'labels' has 2 entries, expected 3"),
        ([1, 2, 10], "a label lies outside 0..9"),
        ("abc", "'labels' is a str"),
        (np.array([0.5, 1, 2]), "'labels' is an array of float64"),
    ],
)
def test_cifar_bad_labels_name_the_file(tmp_path: Path, labels, match: str) -> None:
    with pytest.raises(ValueError, match=r"bad_batch.*" + match):
        data.load_cifar_batch(_cifar(tmp_path / "bad_batch", labels))


def test_cifar_truncated_pickle_names_the_file(tmp_path: Path) -> None:
    path = _cifar(tmp_path / "cut_batch", [1, 2, 3])
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"cut_batch is not a readable pickle"):
        data.load_cifar_batch(path)


def test_cifar_data_of_the_wrong_layout(tmp_path: Path) -> None:
    path = tmp_path / "layout_batch"
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}, f)
    with pytest.raises(ValueError, match=r"layout_batch: data is uint8 \(2, 100\), expected"):
        data.load_cifar_batch(path)


# --- PTB -------------------------------------------------------------------------------


def test_ptb_invalid_utf8_names_the_file(tmp_path: Path) -> None:
    for name in ("train.txt", "valid.txt", "test.txt"):
        (tmp_path / name).write_text("a b c\n")
    (tmp_path / "test.txt").write_bytes(b"fine line\nbad \xff\xfe byte\n")
    with pytest.raises(ValueError, match=r"test\.txt is not UTF-8 text"):
        data.Corpus(tmp_path)


# --- checkpoints -----------------------------------------------------------------------


def test_save_with_an_empty_key_round_trips(tmp_path: Path) -> None:
    t = ndl.Tensor([1.0, 2.0], device="numpy")
    ndl.save({"": t}, tmp_path / "e.safetensors")
    back = ndl.load(tmp_path / "e.safetensors", device="numpy")
    assert list(back) == [""] and back[""].numpy().tolist() == [1.0, 2.0]
    # nested empty keys do not collide with top-level ones
    obj = {"": {"x": ndl.Tensor([1.0], device="numpy")}, "x": ndl.Tensor([2.0], device="numpy")}
    ndl.save(obj, tmp_path / "n.safetensors")
    back = ndl.load(tmp_path / "n.safetensors", device="numpy")
    assert back[""]["x"].numpy().tolist() == [1.0] and back["x"].numpy().tolist() == [2.0]


def _rewrite_metadata(path: Path, change) -> None:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = json.loads(header["__metadata__"]["needle"])
    header["__metadata__"]["needle"] = json.dumps(change(meta))
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + raw[8 + n :])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m: {**m, "format": 99}, "key 'format' is 99, an unknown format version"),
        (lambda m: {"tree": m["tree"]}, "must be an object with 'format' and 'tree'"),
        (lambda m: [1, 2], "must be an object with 'format' and 'tree'"),
        (lambda m: {**m, "tree": {"$dict": [1]}}, r"key '': malformed metadata \(\$dict\)"),
        (
            lambda m: {**m, "tree": {"$dict": {"w": {"$tensor": 5}}}},
            r"key 'w': malformed metadata \(\$tensor 5\)",
        ),
        (
            lambda m: {**m, "tree": {"$dict": {"w": {"$tensor": "nope"}}}},
            "key 'w': metadata names missing entry 'nope'",
        ),
        (
            lambda m: {**m, "tree": {"$dict": {"a": {"$list": [{"$value": {"x": 1}}]}}}},
            r"key 'a/0': malformed metadata \(\$value\)",
        ),
        (lambda m: {**m, "tree": {"$dict": {"w": {"$what": 1}}}}, "key 'w': malformed metadata"),
    ],
)
def test_malformed_checkpoint_metadata_is_a_value_error_naming_the_key(
    tmp_path: Path, change, match: str
) -> None:
    path = tmp_path / "m.safetensors"
    ndl.save({"w": ndl.Tensor([1.0], device="numpy"), "a": [1]}, path)
    _rewrite_metadata(path, change)
    with pytest.raises(ValueError, match=match):
        ndl.load(path, device="numpy")


def test_unsupported_dtype_in_a_checkpoint_names_the_key(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "i8.safetensors"
    tree = {"$dict": {"w": {"$tensor": "w"}}}
    save_file(
        {"w": np.ones(2, np.int8)},
        str(path),
        metadata={"needle": json.dumps({"format": 1, "tree": tree})},
    )
    with pytest.raises(ValueError, match="key 'w': tensor of unsupported dtype int8"):
        ndl.load(path, device="numpy")


def test_save_keeps_the_mode_of_the_target(tmp_path: Path) -> None:
    path = tmp_path / "c.safetensors"
    ndl.save({"x": 1}, path)
    os.chmod(path, 0o644)
    ndl.save({"x": 2}, path)
    assert (path.stat().st_mode & 0o777) == 0o644
    os.chmod(path, 0o640)
    ndl.save({"x": 3}, path)
    assert (path.stat().st_mode & 0o777) == 0o640


def test_a_new_file_gets_the_umask_mode_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        ndl.save({"x": 1}, tmp_path / "new.safetensors")
    finally:
        os.umask(old)
    assert ((tmp_path / "new.safetensors").stat().st_mode & 0o777) == 0o644


def test_save_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real" / "ckpt.safetensors"
    real.parent.mkdir()
    ndl.save({"x": 1}, real)
    link = tmp_path / "latest.safetensors"
    link.symlink_to(real)
    ndl.save({"x": 2}, link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert ndl.load(real)["x"] == 2
    assert sorted(p.name for p in real.parent.iterdir()) == ["ckpt.safetensors"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_save_cleans_stale_temp_files_of_the_same_target(tmp_path: Path) -> None:
    target = tmp_path / "model.safetensors"
    dead = _dead_pid()
    stale = tmp_path / f".model.safetensors.{dead}.abc123.tmp"
    live = tmp_path / f".model.safetensors.{os.getppid()}.def456.tmp"  # a live process
    other = tmp_path / f".other.safetensors.{dead}.xyz.tmp"  # another target
    for p in (stale, live, other):
        p.write_bytes(b"x" * 1000)
        os.utime(p, (1_000_000, 1_000_000))
    ndl.save({"x": 1}, target)
    assert not stale.exists()
    assert live.exists() and other.exists()


def test_sigterm_during_save_leaves_no_temp_file(tmp_path: Path) -> None:
    # the process is killed by SIGTERM while it writes; the temp file is removed first
    code = textwrap.dedent(
        f"""
        import os, signal
        import needle as ndl
        from needle import serialization
        real = serialization.os.fsync
        def fsync(fd):
            if not os.path.isdir(os.readlink(f"/proc/self/fd/{{fd}}")):
                os.kill(os.getpid(), signal.SIGTERM)  # arrives mid-save
            return real(fd)
        serialization.os.fsync = fsync
        try:
            ndl.save({{"x": 1}}, {str(tmp_path / "t.safetensors")!r})
        except KeyboardInterrupt as e:
            print("interrupted:", e)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "interrupted: SIGTERM during needle.save" in out.stdout, out.stderr
    assert list(tmp_path.iterdir()) == []
