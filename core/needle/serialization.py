"""``needle.save`` / ``needle.load``: tensors, state dicts and checkpoints as safetensors.

A saved object is a tensor, a NumPy array, a scalar, a string, or a (nested) dict of
these. Arrays become safetensors entries, keyed by their path in the dict joined with
``/``; everything else, and the record of which entries were Tensors and which NumPy
arrays, goes in the file's metadata as JSON. Loading parses only that: it never executes
code from the file. Writes go to a temporary file in the same folder and are renamed
into place, so a crash mid-save leaves the old file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .autograd import Tensor

_META_KEY = "needle"
_FORMAT = 1


def _flatten(obj: Any, path: str, arrays: dict[str, np.ndarray]) -> Any:
    """Split ``obj`` into ``arrays`` (by path) and a JSON-able skeleton, which is returned."""
    if isinstance(obj, Tensor):
        arrays[path] = np.ascontiguousarray(obj.numpy())
        return {"$tensor": path, "device": str(obj.device)}
    if isinstance(obj, np.ndarray):
        arrays[path] = np.ascontiguousarray(obj)
        return {"$ndarray": path}
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str) or "/" in k:
                raise TypeError(f"needle.save: dict keys must be strings without '/', got {k!r}")
            out[k] = _flatten(v, f"{path}/{k}" if path else k, arrays)
        return {"$dict": out}
    if isinstance(obj, (list, tuple)):
        return {"$list": [_flatten(v, f"{path}/{i}", arrays) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"$value": obj}
    if isinstance(obj, (np.integer, np.floating)):
        return {"$value": obj.item()}
    raise TypeError(
        f"needle.save: cannot save an object of type {type(obj).__name__} "
        f"(at {path or 'top level'}); use tensors, arrays, numbers, strings, "
        "lists and dicts"
    )


def _unflatten(node: Any, arrays: Mapping[str, np.ndarray], device: Any, where: str) -> Any:
    if not isinstance(node, dict) or len(node) == 0:
        raise ValueError(f"needle.load: {where}: malformed metadata")
    if "$tensor" in node:
        return Tensor(
            arrays[node["$tensor"]],
            device=device,
            requires_grad=False,
            dtype=str(arrays[node["$tensor"]].dtype),
        )
    if "$ndarray" in node:
        return arrays[node["$ndarray"]]
    if "$dict" in node:
        return {k: _unflatten(v, arrays, device, where) for k, v in node["$dict"].items()}
    if "$list" in node:
        return [_unflatten(v, arrays, device, where) for v in node["$list"]]
    if "$value" in node:
        return node["$value"]
    raise ValueError(f"needle.load: {where}: malformed metadata")


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` (a tensor, array, or nested dict of tensors, arrays and scalars) to ``path``.

    Raises:
        TypeError: ``obj`` holds something that is not a tensor, array, number, string,
            list or dict.
    """
    from safetensors.numpy import save

    arrays: dict[str, np.ndarray] = {}
    tree = _flatten(obj, "", arrays)
    if "" in arrays:  # a bare tensor or array
        arrays = {"tensor": arrays.pop("")}
        key = "$tensor" if "$tensor" in tree else "$ndarray"
        tree[key] = "tensor"
    metadata = {_META_KEY: json.dumps({"format": _FORMAT, "tree": tree})}
    blob = save(arrays, metadata=metadata)
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(path: str | os.PathLike[str], device: Any = None) -> Any:
    """Read what :func:`save` wrote; tensors are placed on ``device`` (default device).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is truncated, corrupt or not a needle safetensors file
            (the message names the file).
    """
    from safetensors.numpy import load as st_load

    data = Path(path).read_bytes()
    try:
        arrays = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
        meta = json.loads(header["__metadata__"][_META_KEY])
        tree = meta["tree"]
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(
            f"needle.load: {os.fspath(path)!r} is not a valid needle checkpoint "
            f"(truncated or corrupt?): {e}"
        ) from None
    try:
        return _unflatten(tree, arrays, device, repr(os.fspath(path)))
    except KeyError as e:
        raise ValueError(
            f"needle.load: {os.fspath(path)!r}: metadata names missing entry {e}"
        ) from None
