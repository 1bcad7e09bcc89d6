"""``needle new-backend``: the generated backend installs, is found, computes and conforms.

The generator lives in the backend kit (``needle_conformance.kit``, the
``needle-conformance`` distribution); these tests skip without it.

The fast tests check the generator itself. The slow ones pip-install two generated
backends into this environment (removed again afterwards) and drive them from
subprocesses, as a plugin author would: ``scaffoldfull`` as generated, and
``scaffoldpartial`` with ``ewise_mul`` deleted, which needle must refuse unless
``NEEDLE_FALLBACK=1``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from needle.backends import REQUIRED_KERNELS

FULL, PARTIAL, MISSING = "scaffoldfull", "scaffoldpartial", "ewise_mul"


# --- helpers, also used by test_torch_example.py -----------------------------------------
def pip_install_skip_reason() -> str | None:
    """Why this environment cannot pip-install a local folder offline, or None."""
    if importlib.util.find_spec("pip") is None:
        return "pip is not installed in this environment"
    try:
        version = tuple(int(p) for p in metadata.version("setuptools").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return "setuptools is not installed in this environment"
    if version < (70, 1) and importlib.util.find_spec("wheel") is None:
        return "setuptools < 70.1 without `wheel` cannot build wheels with --no-build-isolation"
    return None


def pip(*args: str) -> None:
    """Run ``python -m pip ARGS`` in this environment; fail the test with pip's output."""
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}"


def pip_install(*folders: Path) -> None:
    """Install local distributions (no dependencies, no build isolation: works offline)."""
    pip("install", "--no-deps", "--no-build-isolation", *map(str, folders))


def clean_env(**overrides: str) -> dict[str, str]:
    """The environment for a subprocess, without needle's switches unless given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEEDLE_")}
    env.update(overrides)
    return env


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code`` in a fresh interpreter (fresh plugin discovery)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        check=False,
    )


def json_output(stdout: str) -> object:
    """The JSON document in a subprocess's output, skipping any lines printed before it
    (an editable compiled backend may log its rebuild on import)."""
    start = re.search(r"^[\[{]", stdout, flags=re.M)
    assert start is not None, f"no JSON in output:\n{stdout}"
    return json.JSONDecoder().raw_decode(stdout[start.start() :])[0]


def run_conformance(backend: str, *extra: str, cwd: Path, **env: str) -> str:
    """Run the conformance suite on ``backend``; return its output, failing on failure."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += ["--pyargs", "needle_conformance", f"--needle-backend={backend}", *extra]
    result = subprocess.run(
        cmd, capture_output=True, text=True, cwd=cwd, env=clean_env(**env), check=False
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"conformance of {backend!r} failed:\n{out[-8000:]}"
    return out


needs_pip = pytest.mark.skipif(
    pip_install_skip_reason() is not None, reason=str(pip_install_skip_reason())
)
needs_conformance = pytest.mark.skipif(
    importlib.util.find_spec("needle_conformance") is None,
    reason="needle-conformance is not installed (pip install ./conformance)",
)


def delete_kernel(kernels_py: Path, name: str) -> None:
    """Remove ``def name(...)`` and its body from a generated kernels.py."""
    text = kernels_py.read_text()
    new = re.sub(rf"\ndef {name}\(.*?(?=\n\n\n(?:# ---|def ))", "\n", text, flags=re.S)
    assert new != text and f"def {name}(" not in new
    kernels_py.write_text(new)


def _kit():
    return pytest.importorskip(
        "needle_conformance.kit",
        reason="the backend kit is not installed (pip install ./conformance)",
    )


def create_backend(name: str, path: Path, **kwargs: bool) -> Path:
    return _kit().create_backend(name, path, **kwargs)


def render_kernels(name: str) -> str:
    return _kit().render_kernels(name)


# --- the generator -----------------------------------------------------------------------
def test_generates_an_installable_layout(tmp_path: Path) -> None:
    root = create_backend("mydev", tmp_path / "out")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == [
        ".gitignore",
        "README.md",
        "needle_mydev/__init__.py",
        "needle_mydev/kernels.py",
        "needle_mydev/plugin.py",
        "pyproject.toml",
        "tests/test_conformance.py",
    ]
    pyproject = (root / "pyproject.toml").read_text()
    assert 'name = "needle-mydev"' in pyproject
    assert '[project.entry-points."needle.backends"]\nmydev = "needle_mydev.plugin"' in pyproject
    # The core is needle-core: "needle" on PyPI is an unrelated project.
    assert '"needle-core>=0.1,<0.2", "numpy>=1.24"' in pyproject
    assert '"needle>' not in pyproject and '"needle"' not in pyproject
    assert '"needle-conformance>=0.1,<0.2"' in pyproject
    assert "needle-core" in (root / "README.md").read_text()
    test = (root / "tests" / "test_conformance.py").read_text()
    assert 'BACKEND = "mydev"' in test
    for file in root.rglob("*.py"):
        compile(file.read_text(), str(file), "exec")


def test_kernels_file_has_one_working_function_per_required_kernel() -> None:
    import inspect

    from needle.backends.contract import KERNELS

    source = render_kernels("mydev")
    defined = re.findall(r"^def (\w+)\(", source, flags=re.M)
    optional = ["dlpack_export", "dlpack_import"]  # the optional kernels it also writes
    assert [k for k in defined if not k.startswith("_")] == [*REQUIRED_KERNELS, *optional]
    assert "NotImplementedError" not in source  # every kernel of this contract is written
    namespace: dict[str, object] = {}
    exec(compile(source, "kernels.py", "exec"), namespace)
    for name in [*REQUIRED_KERNELS, *optional]:  # from the record: signature and semantics
        spec = KERNELS[name]
        fn = namespace[name]
        assert tuple(inspect.signature(fn).parameters) == spec.params, name
        assert " ".join(spec.semantics.split()) == " ".join(inspect.getdoc(fn).split()), name


def test_a_kernel_new_to_the_contract_becomes_a_stub(monkeypatch) -> None:
    from dataclasses import replace

    from needle.backends.contract import KERNELS

    scaffold = pytest.importorskip("needle_conformance.kit.scaffold")
    spec = replace(
        KERNELS["ewise_add"], name="ewise_hypot", family="ewise_binary", numpy_function=None
    )
    spec = replace(spec, semantics="out = sqrt(a**2 + b**2), element-wise.")
    monkeypatch.setattr(scaffold, "KERNELS", {**KERNELS, "ewise_hypot": spec})
    source = scaffold.render_kernels("mydev")
    assert "def ewise_hypot(a: Buffer, b: Buffer, out: Buffer) -> None:" in source
    assert 'raise NotImplementedError("ewise_hypot: not written yet' in source
    assert "out = sqrt(a**2 + b**2), element-wise." in source
    compile(source, "kernels.py", "exec")


def test_guide_shows_the_generated_pyproject(tmp_path: Path) -> None:
    root = create_backend("mybackend", tmp_path / "out")
    guide = Path(__file__).resolve().parent.parent / "docs" / "writing-a-backend.md"
    assert (root / "pyproject.toml").read_text() in guide.read_text()


def test_generated_kernels_compute_like_numpy() -> None:
    import numpy as np

    namespace: dict[str, object] = {}
    exec(compile(render_kernels("mydev"), "kernels.py", "exec"), namespace)
    k = argparse.Namespace(**namespace)
    a, b, out = k.alloc(4, "float32"), k.alloc(4, "float32"), k.alloc(4, "float32")
    k.from_numpy(np.array([1, 2, 3, 4], np.float32), a)
    k.fill(b, 2.0)
    k.ewise_power(a, b, out)
    assert k.to_numpy(out, (4,), (1,), 0).tolist() == [1, 4, 9, 16]
    k.scalar_ge(a, 3.0, out)
    assert k.to_numpy(out, (2, 2), (1, 2), 0).tolist() == [[0, 1], [0, 1]]
    with pytest.raises(IndexError, match="to_numpy"):
        k.to_numpy(out, (5,), (1,), 0)
    with pytest.raises(TypeError, match="ewise_add"):
        k.ewise_add(a, k.alloc(4, "float64"), out)


def test_generated_dlpack_kernels_share_memory() -> None:
    import numpy as np

    checks = pytest.importorskip("needle_conformance._dlpack_utils")
    namespace: dict[str, object] = {}
    exec(compile(render_kernels("mydev"), "kernels.py", "exec"), namespace)
    k = argparse.Namespace(**namespace)
    x = np.random.default_rng(3).standard_normal(24)
    for dtype in ("float32", "float64"):  # the conformance checks: values, both ways, lifetime
        for check in (checks.check_export, checks.check_import):
            got, want, what = check(k, dtype, x)
            np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=what)
    with pytest.raises(BufferError, match="int64"):
        k.dlpack_import(np.arange(3), False)
    handle, shape, strides, offset = k.dlpack_import(np.arange(3), None)  # ints: a copy
    values = k.to_numpy(handle, shape, strides, offset)
    assert handle.dtype == "float64" and values.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("MyDev", "lowercase Python identifier"),
        ("my-dev", "lowercase Python identifier"),
        ("1dev", "lowercase Python identifier"),
        ("", "lowercase Python identifier"),
        ("class", "lowercase Python identifier"),
        ("cuda", "needle ships"),
        ("numpy", "needle ships"),
    ],
)
def test_bad_names_are_refused(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_backend(name, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_installed_backend_name_is_refused(tmp_path: Path, monkeypatch) -> None:
    import needle.backends._registry as registry

    monkeypatch.setattr(registry.REGISTRY, "backends", lambda: {"mydev": fake_backend()})
    with pytest.raises(ValueError, match="'mydev' is already installed"):
        create_backend("mydev", tmp_path / "out")


def fake_backend():
    from needle.backends import Backend, BackendInfo

    return Backend(BackendInfo("mydev", "1", (1, 0)), plugin=None, source="x", distribution="d")


def test_non_empty_folder_needs_force(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"not empty.*force"):
        create_backend("mydev", tmp_path)
    assert not (tmp_path / "pyproject.toml").exists()
    root = create_backend("mydev", tmp_path, force=True)
    assert (root / "needle_mydev" / "kernels.py").is_file()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_new_backend_command(tmp_path: Path, capsys) -> None:
    commands = pytest.importorskip("needle_conformance.kit.commands")
    parser = argparse.ArgumentParser(prog="needle")
    commands.register_new_backend(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["new-backend", "mydev", "--path", str(tmp_path / "b")])
    assert args.func(args) == 0
    assert "pip install -e" in capsys.readouterr().out
    assert (tmp_path / "b" / "needle_mydev" / "plugin.py").is_file()
    args = parser.parse_args(["new-backend", "mydev", "--path", str(tmp_path / "b")])
    assert args.func(args) == 2
    assert "not empty" in capsys.readouterr().err


@needs_conformance
def test_needle_cli_offers_new_backend(tmp_path: Path) -> None:
    from needle import cli

    assert cli.main(["new-backend", "mydev", "--path", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "pyproject.toml").is_file()


# --- the generated backends, installed -----------------------------------------------------
@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Generate and pip-install FULL and PARTIAL; uninstall them afterwards."""
    from needle.backends import REGISTRY, unregister_plugin

    stale = [n for n in (FULL, PARTIAL) if _installed(f"needle-{n}")]
    if stale:  # left behind by an interrupted run
        pip("uninstall", "-y", *(f"needle-{n}" for n in stale))
        for name in stale:
            unregister_plugin(name)
    # Discover now, so this process's registry never sees the temporary backends.
    REGISTRY.discover()
    base = tmp_path_factory.mktemp("scaffold")
    roots = {name: create_backend(name, base / name) for name in (FULL, PARTIAL)}
    delete_kernel(roots[PARTIAL] / f"needle_{PARTIAL}" / "kernels.py", MISSING)
    pip_install(*roots.values())
    try:
        yield roots
    finally:
        pip("uninstall", "-y", f"needle-{FULL}", f"needle-{PARTIAL}")


def _installed(dist: str) -> bool:
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


LIST_BACKENDS = """
import json, needle.backends as nb
print(json.dumps({n: [b.distribution, b.status().usable] for n, b in nb.list_backends().items()}))
"""


@pytest.mark.slow
@needs_pip
def test_generated_backend_is_discovered(installed: dict[str, Path]) -> None:
    result = run_python(LIST_BACKENDS)
    assert result.returncode == 0, result.stderr
    listed = json_output(result.stdout)
    assert listed[FULL] == [f"needle-{FULL}", True]
    assert listed[PARTIAL] == [f"needle-{PARTIAL}", True]  # usable until its kernels load
    backends = subprocess.run(
        [sys.executable, "-m", "needle.cli", "backends", "--json"],
        capture_output=True,
        text=True,
        env=clean_env(),
        check=False,
    )
    assert backends.returncode == 0, backends.stderr
    rows = {row["name"]: row for row in json_output(backends.stdout)}
    assert rows[FULL]["usable"] is True and rows[FULL]["distribution"] == f"needle-{FULL}"
    assert rows[PARTIAL]["usable"] is False and MISSING in rows[PARTIAL]["reason"]


@pytest.mark.slow
@needs_pip
def test_generated_backend_computes(installed: dict[str, Path]) -> None:
    code = f"""
import needle
x = needle.Tensor([1.0], device="{FULL}")
y = needle.Tensor([[1.0, 2.0], [3.0, 4.0]], device="{FULL}", requires_grad=True)
z = (y @ y.transpose()).sum()
z.backward()
print(x.device, x.numpy().tolist(), z.numpy().tolist(), y.grad.numpy().tolist())
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    expected = [FULL, "[1.0]", "52.0", "[[8.0,", "12.0],", "[8.0,", "12.0]]"]
    assert result.stdout.split()[-7:] == expected


@pytest.mark.slow
@needs_pip
def test_missing_kernel_is_refused_without_fallback(installed: dict[str, Path]) -> None:
    code = f"""
import needle
try:
    needle.Tensor([1.0], device="{PARTIAL}")
except needle.backends.PluginError as exc:
    print("refused:", exc)
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "refused:" in result.stdout, result.stdout
    assert PARTIAL in result.stdout and MISSING in result.stdout
    assert "NEEDLE_FALLBACK=1" in result.stdout


FALLBACK_USE = f"""
import json, warnings, needle
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    x = needle.Tensor([1.0, 2.0, 3.0], device="{PARTIAL}")
    values = [(x * x * x).numpy().tolist() for _ in range(3)]
backend = needle.backends.list_backends()["{PARTIAL}"]
print(json.dumps({{
    "values": values,
    "fallback": list(backend.fallback_kernels),
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
}}))
"""


@pytest.mark.slow
@needs_pip
def test_missing_kernel_falls_back_with_one_warning(installed: dict[str, Path]) -> None:
    result = run_python(FALLBACK_USE, NEEDLE_FALLBACK="1")
    assert result.returncode == 0, result.stderr
    report = json_output(result.stdout)
    assert report["values"] == [[1.0, 8.0, 27.0]] * 3
    assert report["fallback"] == [MISSING]
    assert len(report["warnings"]) == 1, report["warnings"]
    category, message = report["warnings"][0]
    assert category == "RuntimeWarning" and PARTIAL in message and MISSING in message


@pytest.mark.slow
@needs_pip
@needs_conformance
def test_generated_backend_passes_conformance(installed: dict[str, Path]) -> None:
    # Through the generated tests/test_conformance.py, as the author would run it.
    root = installed[FULL]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        capture_output=True,
        text=True,
        cwd=root,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    assert "1 passed" in result.stdout


@pytest.mark.slow
@needs_pip
@needs_conformance
def test_partial_backend_passes_conformance_with_fallback(installed: dict[str, Path]) -> None:
    # The kernel-by-kernel area and the forward ops keep the run short; both go
    # through the fallen-back ewise_mul.
    out = run_conformance(
        PARTIAL, "-m", "kernels or ops_forward", cwd=installed[PARTIAL], NEEDLE_FALLBACK="1"
    )
    assert " passed" in out
