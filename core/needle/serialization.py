"""``needle.save`` / ``needle.load``: tensors, state dicts and checkpoints as safetensors.

A saved object is a tensor, a NumPy array, a scalar, a string, or a (nested) dict of
these. Arrays become safetensors entries, keyed by their path in the dict joined with
``/``; everything else, and the record of which entries were Tensors and which NumPy
arrays, goes in the file's metadata as JSON. Loading parses only that: it never executes
code from the file. Writes go to a temporary file in the same folder and are renamed
into place, so a crash mid-save leaves the old file intact: the target keeps its
permissions, a symlink is written through (the link stays, its target is replaced), the
folder is synced after the rename, a SIGTERM during the write is handled like Ctrl-C
(the temporary file is removed, then the interrupt propagates), and temporary files
that earlier saves of the same target left behind (killed by SIGKILL) are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .autograd import Tensor

_META_KEY = "needle"
_FORMAT = 1


def _child(path: str | None, key: str) -> str:
    # the root has no path, so ``{"": t}`` (entry "") and ``{"": {"x": t}}`` (entry "/x")
    # never collide with a top-level key ("x")
    return key if path is None else f"{path}/{key}"


def _flatten(obj: Any, path: str | None, arrays: dict[str, np.ndarray]) -> Any:
    """Split ``obj`` into ``arrays`` (by path) and a JSON-able skeleton, which is returned."""
    if isinstance(obj, (Tensor, np.ndarray)):
        entry = "tensor" if path is None else path  # a bare tensor or array
        if entry == "__metadata__":
            raise ValueError("needle.save: '__metadata__' is reserved by safetensors; rename it")
        if isinstance(obj, Tensor):
            arrays[entry] = np.ascontiguousarray(obj.numpy())
            return {"$tensor": entry, "device": str(obj.device)}
        arrays[entry] = np.ascontiguousarray(obj)
        return {"$ndarray": entry}
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str) or "/" in k:
                raise TypeError(f"needle.save: dict keys must be strings without '/', got {k!r}")
            out[k] = _flatten(v, _child(path, k), arrays)
        return {"$dict": out}
    if isinstance(obj, (list, tuple)):
        return {"$list": [_flatten(v, _child(path, str(i)), arrays) for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"$value": obj}
    if isinstance(obj, (np.integer, np.floating)):
        return {"$value": obj.item()}
    raise TypeError(
        f"needle.save: cannot save an object of type {type(obj).__name__} "
        f"(at {'top level' if path is None else repr(path)}); use tensors, arrays, numbers, "
        "strings, "
        "lists and dicts"
    )


_DTYPES = ("float32", "float64")


def _unflatten(node: Any, arrays: Mapping[str, np.ndarray], device: Any, where: str) -> Any:
    """Rebuild the object from the metadata tree; ``where`` is the key path, for errors."""
    if not isinstance(node, dict) or len(node) == 0:
        raise ValueError(f"needle.load: key {where!r}: malformed metadata (not a tagged node)")
    if "$tensor" in node or "$ndarray" in node:
        tag = "$tensor" if "$tensor" in node else "$ndarray"
        entry = node[tag]
        if not isinstance(entry, str):
            raise ValueError(f"needle.load: key {where!r}: malformed metadata ({tag} {entry!r})")
        if entry not in arrays:
            raise ValueError(f"needle.load: key {where!r}: metadata names missing entry {entry!r}")
        array = arrays[entry]
        if tag == "$ndarray":
            return array
        dtype = str(array.dtype)
        if dtype not in _DTYPES:
            raise ValueError(
                f"needle.load: key {where!r}: tensor of unsupported dtype {dtype} "
                f"(needle tensors are {' or '.join(_DTYPES)})"
            )
        return Tensor(array, device=device, requires_grad=False, dtype=dtype)
    if "$dict" in node:
        items = node["$dict"]
        if not isinstance(items, dict):
            raise ValueError(f"needle.load: key {where!r}: malformed metadata ($dict)")
        return {
            k: _unflatten(v, arrays, device, f"{where}/{k}" if where else k)
            for k, v in items.items()
        }
    if "$list" in node:
        items = node["$list"]
        if not isinstance(items, list):
            raise ValueError(f"needle.load: key {where!r}: malformed metadata ($list)")
        return [
            _unflatten(v, arrays, device, f"{where}/{i}" if where else str(i))
            for i, v in enumerate(items)
        ]
    if "$value" in node:
        value = node["$value"]
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise ValueError(f"needle.load: key {where!r}: malformed metadata ($value)")
        return value
    raise ValueError(f"needle.load: key {where!r}: malformed metadata (unknown tag)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _clean_stale_temps(target: Path, started: float) -> None:
    """Remove temp files of earlier saves of ``target`` whose process is gone.

    A temp file is ``.{name}.{pid}.{random}.tmp``. It is stale when it is older than
    this save and the process that wrote it no longer runs (it was killed mid-save).
    """
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[^/]*\.tmp\Z")
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            match = pattern.match(entry.name)
            if match is None:
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime >= started:
                    continue
                if _pid_alive(int(match.group(1))):
                    continue
                os.unlink(entry.path)


def _default_mode() -> int:
    """The mode a new file gets here (0o666 less the umask), as ``open`` would give it."""
    try:  # Linux: read the umask without changing it (os.umask is process-wide)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def _sigterm_as_interrupt(message: str = "SIGTERM during needle.save") -> Any:
    """In the main thread, a SIGTERM during the block raises ``KeyboardInterrupt(message)``.

    Only where SIGTERM has its default action (which would end the process with the
    temporary file left behind); a handler the program installed is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        previous = None
    if previous is not signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(message)

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` (a tensor, array, or nested dict of tensors, arrays and scalars) to ``path``.

    Raises:
        TypeError: ``obj`` holds something that is not a tensor, array, number, string,
            list or dict.
    """
    from safetensors.numpy import save

    arrays: dict[str, np.ndarray] = {}
    tree = _flatten(obj, None, arrays)
    metadata = {_META_KEY: json.dumps({"format": _FORMAT, "tree": tree})}
    blob = save(arrays, metadata=metadata)
    # write through a symlink: the link stays and the file it points to is replaced
    target = Path(os.path.realpath(path))
    folder = target.parent
    started = time.time()
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = _default_mode()
    with _sigterm_as_interrupt():
        fd, tmp = tempfile.mkstemp(
            dir=folder, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fchmod(f.fileno(), mode)
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    with contextlib.suppress(OSError):  # the rename itself reaches the disk
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    _clean_stale_temps(target, started)


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
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(
            f"needle.load: {os.fspath(path)!r} is not a valid needle checkpoint "
            f"(truncated or corrupt?): {e}"
        ) from None
    name = repr(os.fspath(path))
    if not isinstance(meta, dict) or "tree" not in meta or "format" not in meta:
        raise ValueError(
            f"needle.load: {name}: key 'needle' of the metadata must be an object with "
            "'format' and 'tree'"
        )
    if meta["format"] != _FORMAT:
        raise ValueError(
            f"needle.load: {name}: key 'format' is {meta['format']!r}, an unknown format "
            f"version (this needle reads format {_FORMAT}); a newer needle wrote it?"
        )
    try:
        return _unflatten(meta["tree"], arrays, device, "")
    except ValueError as e:
        raise ValueError(f"{e} (in {name})") from None
