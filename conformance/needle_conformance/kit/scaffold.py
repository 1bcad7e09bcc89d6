"""``needle new-backend``: generate a new backend distribution that works from day one.

Part of the backend kit (the ``needle-conformance`` distribution), not of the core.

:func:`create_backend` writes a complete, installable backend package whose kernels all
start as NumPy code over a NumPy-held buffer. Every required kernel of the contract
(:data:`needle.backends.contract.KERNELS`) gets its own function, generated from its
record: the signature from ``spec.params``, the docstring from ``spec.semantics``, and
the body from its family (element-wise kernels call ``spec.numpy_function``), so the
author can replace them one at a time with code for their device while the conformance
suite keeps them honest.

The generated layout::

    needle-<name>/
      pyproject.toml            entry point: needle.backends: <name> = "needle_<name>.plugin"
      README.md
      needle_<name>/__init__.py
      needle_<name>/plugin.py   the three hooks
      needle_<name>/kernels.py  one function per required kernel
      tests/test_conformance.py runs `pytest --pyargs needle_conformance --needle-backend=<name>`
                                and prints the backend tested and the per-area counts
      .gitignore
"""

from __future__ import annotations

import keyword
import re
import textwrap
from pathlib import Path

from needle.backends.contract import CONTRACT_VERSION, KERNELS, KernelSpec

__all__ = ["RESERVED_NAMES", "check_name", "core_requirement", "create_backend", "render_kernels"]

RESERVED_NAMES = frozenset({"numpy", "cpp", "cuda"})
"""The backends needle ships: never a name for a new one, installed here or not."""

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

# The body of each kernel outside the element-wise families (its signature comes from
# its contract record).
_BODIES: dict[str, str] = {
    "alloc": """\
if dtype not in DTYPES:
    raise TypeError(f"alloc: backend {BACKEND!r} does not support dtype {dtype!r}")
if size < 0:
    raise ValueError(f"alloc: negative size {size}")
try:
    array = np.empty(int(size), dtype=DTYPES[dtype])
except (ValueError, MemoryError) as exc:  # 2**62 elements: NumPy's message has no name
    raise MemoryError(f"alloc: cannot allocate {size} elements of {dtype}: {exc}") from None
return Buffer(array)""",
    "from_numpy": """\
_check("from_numpy", out)
src = np.asarray(src)
if src.size != out.size:
    raise ValueError(f"from_numpy: source has {src.size} elements, buffer {out.size}")
_write(out, src.reshape(-1))""",
    "to_numpy": """\
view = _strided("to_numpy", _host(a), shape, strides, offset)
if view.shape != tuple(shape):
    raise ValueError(f"to_numpy: NumPy cannot make an array of shape {tuple(shape)}")
return view.copy()""",
    "fill": """\
_check("fill", out)
_write(out, np.full(out.size, value))""",
    "astype": """\
_check("astype", a, out)
if a.size < out.size:
    raise ValueError(f"astype: source has {a.size} elements, need {out.size}")
_write(out, _host(a)[: out.size])""",
    "compact": """\
_check("compact", a, out)
if a.dtype != out.dtype:
    raise TypeError(f"compact: dtype mismatch {a.dtype} vs {out.dtype}")
view = _strided("compact", _host(a), shape, strides, offset)
_inputs("compact", view.size, out)
_write(out, view.reshape(-1))""",
    "ewise_setitem": """\
_check("ewise_setitem", a, out)
if a.dtype != out.dtype:
    raise TypeError(f"ewise_setitem: dtype mismatch {a.dtype} vs {out.dtype}")
dst = _host(out).copy()
view = _strided("ewise_setitem", dst, shape, strides, offset)
(src,) = _inputs("ewise_setitem", view.size, a)
view[...] = src.reshape(view.shape)
_write(out, dst)""",
    "scalar_setitem": """\
dst = _host(out).copy()
view = _strided("scalar_setitem", dst, shape, strides, offset)
if view.size != size:
    raise ValueError(f"scalar_setitem: size {size} does not match a view of {view.size}")
# Stride-0 axes only repeat elements: write each one once (a broadcast view of 2**40
# elements is one store, not minutes).
with np.errstate(all="ignore"):
    view[tuple(slice(0, 1) if st == 0 else slice(None) for st in view.strides)] = value
_write(out, dst)""",
    "reduce_sum": """\
rows = _rows("reduce_sum", a, out, reduce_size)
_write(out, np.sum(rows, axis=1))""",
    "reduce_max": """\
if reduce_size < 1:
    raise ValueError(f"reduce_max: reduce_size must be >= 1, got {reduce_size}")
rows = _rows("reduce_max", a, out, reduce_size)
_write(out, np.max(rows, axis=1))""",
    "matmul": """\
_check("matmul", a, b, out)
if not a.dtype == b.dtype == out.dtype:
    raise TypeError(f"matmul: dtype mismatch {a.dtype}, {b.dtype}, {out.dtype}")
(x,) = _inputs("matmul", m * n, a)
(y,) = _inputs("matmul", n * p, b)
_inputs("matmul", m * p, out)
_write(out, np.matmul(x.reshape(m, n), y.reshape(n, p)).reshape(-1))""",
}


# Python types of the contract's parameters, for the generated signatures.
_TYPES = {
    **dict.fromkeys(("a", "b", "out", "x", "w", "cond"), "Buffer"),
    "src": "np.ndarray",
    "value": "float",
    "dtype": "str",
    "shape": "tuple[int, ...]",
    "strides": "tuple[int, ...]",
    "obj": "object",
    "copy": "bool | None",
}
_RETURNS = {
    None: "None",
    "handle": "Buffer",
    "ndarray": "np.ndarray",
    "producer": "np.ndarray",
    "import": "tuple[Buffer, tuple[int, ...], tuple[int, ...], int]",
    "int": "int",
}

# Optional kernels the generated backend provides from the start (declared in its
# plugin's ``optional_kernels``), with their NumPy bodies: DLPack interop (issue 17).
_OPTIONAL_BODIES: dict[str, str] = {
    "dlpack_export": """\
# A NumPy view of the buffer's memory: NumPy arrays are DLPack producers, and the
# view keeps the memory alive while any capsule taken from it lives. Once your buffer
# lives on a device, return a producer of your device's memory (or delete this kernel
# and remove it from optional_kernels: needle then copies through to_numpy).
_check("dlpack_export", a)
return _strided("dlpack_export", _host(a), shape, strides, offset)""",
    "dlpack_import": """\
if copy not in (None, True, False):
    raise TypeError(f"dlpack_import: copy must be None, True or False, got {copy!r}")
# NumPy consumes the capsule and keeps the producer alive (needle's helper checks the
# dtype and layout; change `dtypes` if your backend holds others).
arr, strides, span = host_array("dlpack_import", obj, copy, dtypes=tuple(DTYPES))
# A flat view from the first element to the last: the Buffer holds it, it holds arr,
# and arr holds the producer's memory until the Buffer dies.
flat = np.lib.stride_tricks.as_strided(
    arr, shape=(span,), strides=(arr.itemsize,), writeable=arr.flags.writeable
)
return Buffer(flat), tuple(arr.shape), strides, 0""",
}


def _signature(spec: KernelSpec) -> str:
    """``ewise_add(a: Buffer, b: Buffer, out: Buffer) -> None``, from the record."""
    params = ", ".join(f"{p}: {_TYPES.get(p, 'int')}" for p in spec.params)
    return f"{spec.name}({params}) -> {_RETURNS.get(spec.returns, 'object')}"


def _body(spec: KernelSpec) -> str:
    """The NumPy body of ``spec``'s kernel, chosen by its family."""
    if spec.name in _BODIES:
        return _BODIES[spec.name]
    fn = spec.numpy_function
    if fn and spec.family == "ewise_binary":
        a, b, out = spec.params
        arrays = f'x, y, _ = _inputs("{spec.name}", {out}.size, {a}, {b}, {out})'
        call = f"{fn}(x, y)"
    elif fn and spec.family == "scalar_binary":
        a, value, out = spec.params
        arrays = f'x, _ = _inputs("{spec.name}", {out}.size, {a}, {out})'
        # An array of the rounded value, not a scalar: NumPy turns x ** 0.5 into sqrt
        # (NaN for -inf) where the contract's pow gives inf.
        call = f"{fn}(x, np.full(x.shape, x.dtype.type({value})))"
    elif fn and spec.family == "ewise_unary":
        a, out = spec.params
        arrays = f'x, _ = _inputs("{spec.name}", {out}.size, {a}, {out})'
        call = f"{fn}(x)"
    else:
        arrays = ""
    if arrays:
        return f'{arrays}\nwith np.errstate(all="ignore"):\n    _write({out}, {call})'
    # A kernel added to the contract after this scaffold was written: the generated
    # backend still imports, and the conformance suite points at the stub.
    return f'raise NotImplementedError("{spec.name}: not written yet (see its docstring)")'


_KERNELS_HEADER = '''\
"""Kernels of the {name!r} needle backend.

Generated by ``needle new-backend`` from needle's backend contract {version}. Every
required kernel is here, one function each, and starts as NumPy code over a buffer
that holds a NumPy array, so the backend works and passes the conformance suite from
the start. Make it yours one step at a time:

1. Change :class:`Buffer` to hold your device's memory, and ``alloc``, ``_host`` (your
   memory as a NumPy array) and ``_write`` (NumPy values into your memory) to match.
   Every other kernel still works through those two helpers, slowly.
2. Replace kernels one at a time with code for your device, re-running
   ``pytest tests`` after each. Or delete a kernel and run with ``NEEDLE_FALLBACK=1``:
   needle runs the missing one through NumPy and warns once.

Conventions (from ``needle.backends.contract``): flat buffers, destination-passing
style (the core allocates ``out``, the kernel fills it), shapes, strides and offsets
counted in elements. Check sizes, dtypes and bounds before touching memory, and raise
ValueError/TypeError/IndexError with a message that names the kernel.
"""

from __future__ import annotations

import numpy as np
from needle.backends.dlpack import host_array

BACKEND = "{name}"
DTYPES = {{"float32": np.float32, "float64": np.float64}}


class Buffer:
    """A flat buffer of ``size`` elements of ``dtype`` (the contract's *handle*)."""

    __slots__ = ("array", "dtype", "size")

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        # Plain attributes, set once: the core reads them on every kernel call.
        self.size: int = int(array.size)
        self.dtype: str = array.dtype.name

    def __repr__(self) -> str:
        return f"Buffer(size={{self.size}}, dtype={{self.dtype}})"


# --- the two bridges between your memory and NumPy ---------------------------------
def _host(h: Buffer) -> np.ndarray:
    """The whole buffer as a 1-D NumPy array (a copy, once it lives on a device)."""
    return h.array


def _write(out: Buffer, values: np.ndarray) -> None:
    """Store ``values`` (1-D, at most ``out.size`` long) at the start of ``out``."""
    with np.errstate(all="ignore"):  # 1e300 into float32 is inf, as the contract says
        out.array[: values.size] = values


# --- checks ------------------------------------------------------------------------
def _check(kernel: str, *handles: Buffer) -> None:
    for h in handles:
        if not isinstance(h, Buffer):
            raise TypeError(f"{{kernel}}: expected a {{BACKEND}} buffer, got {{type(h).__name__}}")


def _inputs(kernel: str, size: int, *handles: Buffer) -> list[np.ndarray]:
    """The first ``size`` elements of each handle, after checking type, size and dtype."""
    _check(kernel, *handles)
    for h in handles:
        if h.size < size:
            raise ValueError(f"{{kernel}}: buffer of {{h.size}} elements, need {{size}}")
        if h.dtype != handles[0].dtype:
            raise TypeError(f"{{kernel}}: dtype mismatch {{handles[0].dtype}} vs {{h.dtype}}")
    return [_host(h)[:size] for h in handles]


def _strided(kernel: str, flat: np.ndarray, shape, strides, offset) -> np.ndarray:
    """A NumPy view (shape, strides, offset) of ``flat``, bounds-checked first."""
    shape, strides, offset = tuple(shape), tuple(strides), int(offset)
    if len(shape) != len(strides):
        raise ValueError(f"{{kernel}}: shape {{shape}} and strides {{strides}} differ in length")
    if min(shape, default=0) < 0 or min(strides, default=0) < 0 or offset < 0:
        layout = f"shape {{shape}}, strides {{strides}}, offset {{offset}}"
        raise ValueError(f"{{kernel}}: negative value in {{layout}}")
    if 0 in shape:  # no element to check; NumPy refuses (0, 2**62), empty all the same
        try:
            return np.empty(shape, dtype=flat.dtype)
        except ValueError:
            return np.empty((0,), dtype=flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
    if last >= flat.size:
        raise IndexError(
            f"{{kernel}}: view (shape {{shape}}, strides {{strides}}, offset {{offset}}) "
            f"reaches element {{last}} of a buffer of {{flat.size}}"
        )
    item = flat.itemsize
    return np.lib.stride_tricks.as_strided(
        flat[offset:], shape=shape, strides=tuple(s * item for s in strides), writeable=True
    )


def _rows(kernel: str, a: Buffer, out: Buffer, reduce_size: int) -> np.ndarray:
    """``a`` as an (out.size, reduce_size) NumPy array, for the reductions."""
    if reduce_size < 0:
        raise ValueError(f"{{kernel}}: negative reduce_size {{reduce_size}}")
    _inputs(kernel, out.size, out)
    (src,) = _inputs(kernel, out.size * reduce_size, a)
    if a.dtype != out.dtype:
        raise TypeError(f"{{kernel}}: dtype mismatch {{a.dtype}} vs {{out.dtype}}")
    if out.size == 0:  # no row: reduce_size may be anything (2**62 included)
        return src[:0].reshape(0, min(reduce_size, 1))
    return src.reshape(out.size, reduce_size)
'''


def _docstring(text: str) -> str:
    lines = textwrap.wrap(text, width=84, break_on_hyphens=False)
    if len(lines) == 1:
        return f'    """{lines[0]}"""'
    return '    """' + "\n    ".join(lines) + '\n    """'


def render_kernels(name: str) -> str:
    """The generated ``kernels.py`` for backend ``name``: one function per required kernel,
    then the optional DLPack pair (``dlpack_export``, ``dlpack_import``).

    Generated from the contract's records (:data:`needle.backends.contract.KERNELS`), so a
    kernel added to the contract shows up here (as a ``NotImplementedError`` stub with
    its signature and docstring when this module has no body for it yet).
    """
    version = ".".join(map(str, CONTRACT_VERSION))
    blocks, section = [], ""
    for spec in (s for s in KERNELS.values() if s.required):
        heading = ""
        if _SECTIONS.get(spec.family, spec.family) != section:
            section = _SECTIONS.get(spec.family, spec.family)
            heading = f"# --- {section} " + "-" * (80 - len(section)) + "\n"
        blocks.append(
            f"{heading}def {_signature(spec)}:\n{_docstring(spec.semantics)}\n"
            + textwrap.indent(_body(spec), "    ")
            + "\n"
        )
    heading = "# --- optional: DLPack interop " + "-" * 51 + "\n"
    for opt in _OPTIONAL_BODIES:
        spec = KERNELS[opt]
        blocks.append(
            f"{heading}def {_signature(spec)}:\n{_docstring(spec.semantics)}\n"
            + textwrap.indent(_OPTIONAL_BODIES[opt], "    ")
            + "\n"
        )
        heading = ""
    return _KERNELS_HEADER.format(name=name, version=version) + "\n\n" + "\n\n".join(blocks)


_SECTIONS = {
    "buffer": "buffers",
    "layout": "layout",
    "ewise_binary": "element-wise and scalar",
    "scalar_binary": "element-wise and scalar",
    "ewise_unary": "element-wise and scalar",
    "reduce": "reductions and matmul",
    "matmul": "reductions and matmul",
}


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "The {name!r} array backend for needle"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["{core_requirement}", "numpy>=1.24"]

[project.optional-dependencies]
test = ["pytest>=8", "{kit_requirement}"]

[project.entry-points."needle.backends"]
{name} = "{package}.plugin"

[tool.setuptools]
packages = ["{package}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

_INIT = '''\
"""{dist}: the {name!r} array backend for needle.

The plugin module is :mod:`{package}.plugin`; the kernels are in :mod:`{package}.kernels`.
"""

__version__ = "0.1.0"
'''

_PLUGIN = '''\
"""Hook implementations that register the {name!r} backend with needle.

needle finds this module through the ``needle.backends`` entry point in pyproject.toml.
Keep it light: it is imported whenever needle lists backends. Heavy imports (your
device library, a compiled extension) belong in ``kernels.py``.
"""

from __future__ import annotations

from types import ModuleType

from needle.backends import BackendInfo, BackendStatus, hookimpl

from . import __version__


@hookimpl
def needle_backend_info() -> BackendInfo:
    """Describe the backend: cheap, no heavy imports."""
    return BackendInfo(
        name="{name}",
        version=__version__,
        contract_version={contract},
        dtypes=("float32", "float64"),
        # names from needle.backends.OPTIONAL_KERNELS you provide
        optional_kernels=("dlpack_export", "dlpack_import"),
        description="{name} backend (generated by needle new-backend)",
    )


@hookimpl
def needle_backend_status() -> BackendStatus:
    """Whether the backend can run here; report problems, never raise."""
    return BackendStatus(usable=True, device_count=1)


@hookimpl
def needle_backend_load(index: int) -> ModuleType:
    """Return the kernel table for device ``index``."""
    from . import kernels

    return kernels
'''

_TEST_CONFORMANCE = '''\
"""The needle conformance suite against this backend, run in a child pytest process.

The child's per-area counts and the name of the backend it tested are printed here
(not only pass/fail), so ``pytest tests`` shows what was checked.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
XFAIL = ROOT / "conformance-xfail.txt"
BACKEND = "{name}"


@pytest.mark.skipif(
    importlib.util.find_spec("needle_conformance") is None,
    reason="needle-conformance is not installed (pip install needle-conformance)",
)
def test_conformance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from needle_conformance import Table, summary

    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += ["--pyargs", "needle_conformance", f"--needle-backend={{BACKEND}}"]
    cmd.append(f"--needle-report={{report}}")
    if XFAIL.exists():
        cmd.append(f"--needle-xfail={{XFAIL}}")
    # Run from the distribution's folder, so pytest's rootdir (and the test ids the
    # xfail patterns match) are the same wherever this test is started from.
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    table = Table.from_json(json.loads(report.read_text())) if report.exists() else Table()
    with capsys.disabled():
        print(f"\\nneedle conformance: backend {{BACKEND!r}} (tested in a child process)")
        print(summary(table))
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
'''

_GITIGNORE = """\
__pycache__/
*.egg-info/
build/
dist/
.pytest_cache/
.hypothesis/
.venv/
"""


_README = """\
# {dist}

The `{name}` array backend for needle (the `needle-core` distribution; import name
`needle`), generated by `needle new-backend {name}` from needle's backend kit
(`needle-conformance`).

## Install and check

```bash
pip install -e ".[test]"             # needs {core_requirement} and needle-conformance
needle backends                      # lists `{name}` with its status
python -c "import needle; print(needle.Tensor([1.0, 2.0], device='{name}') * 2)"
pytest tests                         # runs needle's conformance suite on `{name}`
```

## Make it yours

`{package}/kernels.py` has one function per required kernel of needle's backend
contract {version}, each starting as NumPy code. Change `Buffer`, `alloc`, `_host` and
`_write` to use your device's memory first; then replace the kernels one at a time,
running `pytest tests` after each. To work with some kernels missing, delete them and
set `NEEDLE_FALLBACK=1`: needle runs each missing kernel through NumPy and warns once.

Optional kernels (`batched_matmul`, `logsumexp_last`, ...) are listed in
`needle.backends.OPTIONAL_KERNELS`; add the ones you write to `optional_kernels` in
`{package}/plugin.py`. The generated backend already provides `dlpack_export` and
`dlpack_import` (DLPack interop with PyTorch, NumPy, JAX... through NumPy views).

See needle's `docs/writing-a-backend.md` for the whole contract.
"""


def _compatible_range(dist: str, version: str) -> str:
    """``dist>=X.Y,<X.(Y+1)`` for 0.x versions, ``dist>=X.Y,<(X+1)`` after: the releases
    that keep the API of ``version``."""
    major, minor = (int(part) for part in version.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"{dist}>={major}.{minor},<{upper}"


def core_requirement() -> str:
    """The generated backend's requirement on the core, e.g. ``needle-core>=0.1,<0.2``.

    The core's distribution is ``needle-core`` (``needle`` on PyPI is another project);
    the range is the releases compatible with the core running here.
    """
    from needle import __version__

    return _compatible_range("needle-core", __version__)


def _kit_requirement() -> str:
    from .. import __version__

    return _compatible_range("needle-conformance", __version__)


def check_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` can name a new backend."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or keyword.iskeyword(name):
        raise ValueError(
            f"new-backend: invalid backend name {name!r}: use a lowercase Python identifier "
            "(letters, digits and underscores, starting with a letter), e.g. 'mybackend'"
        )
    if name in RESERVED_NAMES:
        raise ValueError(f"new-backend: {name!r} is a backend that needle ships; pick another name")
    from needle.backends import list_backends

    installed = list_backends()
    if name in installed:
        backend = installed[name]
        raise ValueError(
            f"new-backend: a backend called {name!r} is already installed "
            f"({backend.distribution or backend.source}); pick another name"
        )


def create_backend(name: str, path: str | Path, *, force: bool = False) -> Path:
    """Generate the distribution ``needle-<name>`` for a new backend in ``path``.

    Args:
        name: the backend name (``device("<name>")``): a lowercase identifier that is
            not already a backend.
        path: the folder to create the distribution in (created if missing).
        force: write into a folder that is not empty, overwriting the generated files
            (other files are left alone).

    Returns:
        The folder, as a :class:`~pathlib.Path`.

    Raises:
        ValueError: ``name`` is not a valid or free backend name.
        FileExistsError: ``path`` exists and is a non-empty folder (or a file) without
            ``force``.
    """
    check_name(name)
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"new-backend: {root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()) and not force:
        raise FileExistsError(
            f"new-backend: {root} is not empty; choose an empty or new folder, "
            "or pass force=True (--force) to overwrite the generated files"
        )
    fields = {
        "name": name,
        "dist": "needle-" + name.replace("_", "-"),
        "package": f"needle_{name}",
        "version": ".".join(map(str, CONTRACT_VERSION)),
        "contract": repr(tuple(CONTRACT_VERSION)),
        "core_requirement": core_requirement(),
        "kit_requirement": _kit_requirement(),
    }
    package = root / fields["package"]
    files = {
        root / "pyproject.toml": _PYPROJECT.format(**fields),
        root / "README.md": _README.format(**fields),
        package / "__init__.py": _INIT.format(**fields),
        package / "plugin.py": _PLUGIN.format(**fields),
        package / "kernels.py": render_kernels(name),
        root / "tests" / "test_conformance.py": _TEST_CONFORMANCE.format(**fields),
        root / ".gitignore": _GITIGNORE,
    }
    for file, text in files.items():
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    return root
