"""The backend contract may not change silently.

``tests/contract_snapshot.json`` records what third-party backends are built against:
the hook names and signatures, the required and optional kernel names, each kernel's
signature (its parameters, in order) and ``CONTRACT_VERSION``. When the contract
changes, bump the version in ``core/needle/backends/contract.py`` and regenerate the
snapshot::

    python tests/test_contract_snapshot.py --update

Which bump: a change to the hooks or the required kernels, a changed kernel signature,
or a removed optional kernel, breaks existing backends and needs a new **major**
version; a new optional kernel needs at least a new **minor** version. ``--update``
refuses a snapshot whose version bump is too small.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import pytest

SNAPSHOT = Path(__file__).resolve().parent / "contract_snapshot.json"
UPDATE_HINT = (
    "bump CONTRACT_VERSION in core/needle/backends/contract.py (major for a changed hook "
    "or required kernel, minor for a new optional kernel) and regenerate the snapshot "
    "with `python tests/test_contract_snapshot.py --update`"
)


def current_contract() -> dict[str, Any]:
    """The contract as this checkout defines it, in the snapshot's JSON form."""
    from needle.backends import contract, hookspecs

    hooks = {
        name: str(inspect.signature(fn))
        for name, fn in sorted(vars(hookspecs).items())
        if name.startswith("needle_") and callable(fn) and hasattr(fn, "needle_spec")
    }
    return {
        "contract_version": list(contract.CONTRACT_VERSION),
        "hookspecs": hooks,
        "required_kernels": sorted(contract.REQUIRED_KERNELS),
        "optional_kernels": sorted(contract.OPTIONAL_KERNELS),
        "kernel_signatures": {name: spec.signature for name, spec in contract.KERNELS.items()},
    }


def contract_problems(snapshot: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Why ``current`` may not replace ``snapshot`` as it stands (empty when identical).

    Each problem names what changed. A changed kernel list or hook without a version
    bump big enough is reported as such, so the message says what to do.
    """
    old_v, new_v = tuple(snapshot["contract_version"]), tuple(current["contract_version"])
    changes, needs_major = [], False
    for key in ("required_kernels", "optional_kernels"):
        added = sorted(set(current[key]) - set(snapshot[key]))
        removed = sorted(set(snapshot[key]) - set(current[key]))
        if added:
            changes.append(f"{key} added: {', '.join(added)}")
            needs_major |= key == "required_kernels"
        if removed:
            changes.append(f"{key} removed: {', '.join(removed)}")
            needs_major = True
    old_s = snapshot.get("kernel_signatures", {})
    new_s = current.get("kernel_signatures", {})
    for name in sorted(set(old_s) & set(new_s)):
        if old_s[name] != new_s[name]:
            changes.append(f"kernel signature {old_s[name]} -> {new_s[name]}")
            needs_major = True
    old_h, new_h = snapshot["hookspecs"], current["hookspecs"]
    for name in sorted(set(old_h) | set(new_h)):
        if old_h.get(name) != new_h.get(name):
            changes.append(f"hook {name}: {old_h.get(name)} -> {new_h.get(name)}")
            needs_major = True
    problems = []
    if changes and needs_major and new_v[0] <= old_v[0]:
        problems.append(
            f"the backend contract changed but its major version did not "
            f"(still {old_v[0]}.x): " + "; ".join(changes)
        )
    elif changes and new_v <= old_v:
        problems.append(
            f"the backend contract changed but its version did not (still "
            f"{'.'.join(map(str, new_v))}): " + "; ".join(changes)
        )
    elif changes or new_v != old_v:
        problems.append(
            "the snapshot is out of date (version "
            f"{'.'.join(map(str, old_v))} -> {'.'.join(map(str, new_v))})"
            + (": " + "; ".join(changes) if changes else "")
        )
    return problems


def test_contract_matches_snapshot() -> None:
    snapshot = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    problems = contract_problems(snapshot, current_contract())
    assert not problems, "\n".join(problems) + f"\nTo fix: {UPDATE_HINT}."


def test_changed_required_kernels_need_a_major_bump() -> None:
    base = current_contract()
    for change in ("add", "remove"):
        changed = json.loads(json.dumps(base))
        if change == "add":
            changed["required_kernels"].append("ewise_atan2")
        else:
            changed["required_kernels"].remove("ewise_mul")
        changed["contract_version"][1] += 1  # a minor bump is not enough
        (problem,) = contract_problems(base, changed)
        assert "major version did not" in problem
        assert ("ewise_atan2" if change == "add" else "ewise_mul") in problem
        changed["contract_version"] = [base["contract_version"][0] + 1, 0]
        (problem,) = contract_problems(base, changed)
        assert "snapshot is out of date" in problem


def test_changed_hook_signature_needs_a_major_bump() -> None:
    base = current_contract()
    changed = json.loads(json.dumps(base))
    changed["hookspecs"]["needle_backend_load"] = "(index: int, dtype: str) -> Any"
    (problem,) = contract_problems(base, changed)
    assert "major version did not" in problem and "needle_backend_load" in problem


def test_changed_kernel_signature_needs_a_major_bump() -> None:
    base = current_contract()
    changed = json.loads(json.dumps(base))
    changed["kernel_signatures"]["ewise_add"] = "ewise_add(a, b, out, alpha)"
    changed["contract_version"][1] += 1
    (problem,) = contract_problems(base, changed)
    assert "major version did not" in problem and "ewise_add(a, b, out, alpha)" in problem


def test_new_optional_kernel_needs_at_least_a_minor_bump() -> None:
    base = current_contract()
    changed = json.loads(json.dumps(base))
    changed["optional_kernels"].append("fused_gelu")
    (problem,) = contract_problems(base, changed)
    assert "version did not" in problem and "fused_gelu" in problem
    changed["contract_version"][1] += 1
    (problem,) = contract_problems(base, changed)
    assert "snapshot is out of date" in problem


def test_guide_kernel_tables_are_current() -> None:
    import subprocess

    tool = SNAPSHOT.parent.parent / "tools" / "gen_kernel_table.py"
    result = subprocess.run(
        [sys.executable, str(tool), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


# --- the records themselves ------------------------------------------------------------
def test_kernel_table_protocol_matches_the_records() -> None:
    """``KernelTable`` names every required kernel, with the record's parameters in order."""
    from needle.backends.contract import KERNELS, KernelTable

    methods = {
        name: fn
        for name, fn in vars(KernelTable).items()
        if callable(fn) and not name.startswith("_")
    }
    required = {name: spec for name, spec in KERNELS.items() if spec.required}
    assert sorted(methods) == sorted(required)
    for name, fn in methods.items():
        params = tuple(inspect.signature(fn).parameters)[1:]  # drop self
        assert params == required[name].params, name


def test_reference_backend_satisfies_the_protocol() -> None:
    import needle as ndl
    from needle.backends import KernelTable

    assert isinstance(ndl.device("numpy").kernels, KernelTable)

    class Lacking:
        alloc = staticmethod(lambda size, dtype: None)

    assert not isinstance(Lacking(), KernelTable)


def test_records_are_consistent() -> None:
    from needle.backends import contract

    assert list(contract.KERNELS) == [s.name for s in contract.KERNELS.values()]
    assert {
        n: s.doc for n, s in contract.KERNELS.items() if s.required
    } == contract.REQUIRED_KERNELS
    assert set(contract.OPTIONAL_KERNELS) == {
        n for n, s in contract.KERNELS.items() if not s.required
    }
    for spec in contract.KERNELS.values():
        assert spec.family in contract.FAMILIES, spec.name
        assert spec.signature == f"{spec.name}({', '.join(spec.params)})"
        assert spec.arity == len(spec.params)
        assert spec.required == (spec.family != "optional"), spec.name
        tags = [e.tag for e in spec.errors]
        assert len(tags) == len(set(tags)), spec.name
        if spec.family not in ("buffer", "layout") and spec.name != "synchronize":
            assert spec.reference is not None, spec.name
    assert sum(len(contract.kernels_in_family(f)) for f in contract.FAMILIES) == len(
        contract.KERNELS
    )
    with pytest.raises(ValueError, match="unknown kernel family 'ewise'"):
        contract.kernels_in_family("ewise")


def test_references_compute_what_the_semantics_say() -> None:
    """Spot checks of the NumPy references against hand-computed values."""
    import numpy as np
    from needle.backends.contract import KERNELS

    a, b = np.array([1.0, -2.0, np.nan]), np.array([3.0, -2.0, 0.0])
    assert KERNELS["ewise_sub"].reference(a[:2], b[:2]).tolist() == [-2.0, 0.0]
    assert KERNELS["ewise_ne"].reference(a, b).tolist() == [1.0, 0.0, 1.0]
    assert KERNELS["ewise_ge"].reference(a, b).tolist() == [0.0, 1.0, 0.0]
    assert np.isnan(KERNELS["ewise_maximum"].reference(a, b)[2])
    assert KERNELS["scalar_div"].reference(np.array([1.0, 3.0]), 2.0).tolist() == [0.5, 1.5]
    assert KERNELS["ewise_eq"].reference(np.float32([1, 2]), 2.0).dtype == np.float32
    rows = np.array([[1.0, 5.0, 5.0], [-np.inf, -np.inf, -np.inf]])
    assert KERNELS["reduce_argmax"].reference(rows[:1]).tolist() == [1.0]
    assert KERNELS["reduce_max"].reference(rows).tolist() == [5.0, -np.inf]
    lse = KERNELS["logsumexp_last"].reference(rows)
    assert np.isclose(lse[0], np.log(np.e + 2 * np.e**5)) and lse[1] == -np.inf
    assert KERNELS["reduce_sum"].reference(np.zeros((3, 0))).tolist() == [0.0, 0.0, 0.0]
    sm = KERNELS["softmax_last"].reference(np.array([[1000.0, 1000.0]]))
    assert sm.tolist() == [[0.5, 0.5]]
    flat = np.arange(10.0)
    assert KERNELS["compact"].reference(flat, (2, 2), (1, 3), 4).tolist() == [[4, 7], [5, 8]]
    put = KERNELS["scalar_setitem"].reference(flat, -1.0, (2,), (4,), 1)
    assert put.tolist() == [0, -1, 2, 3, 4, -1, 6, 7, 8, 9] and flat[1] == 1.0
    x = np.arange(2 * 3 * 3 * 1, dtype=float).reshape(2, 3, 3, 1)
    w = np.ones((2, 2, 1, 1))
    y = KERNELS["conv2d_nhwc"].reference(x, w, 1)
    assert y.shape == (2, 2, 2, 1) and y[0, 0, 0, 0] == 0 + 1 + 3 + 4


def _update() -> int:
    current = current_contract()
    if SNAPSHOT.exists():
        old = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
        refused = [p for p in contract_problems(old, current) if "did not" in p]
        if refused:
            print("refusing to update the snapshot:\n" + "\n".join(refused), file=sys.stderr)
            print(f"To fix: {UPDATE_HINT}.", file=sys.stderr)
            return 1
    SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python tests/test_contract_snapshot.py --update")
    sys.exit(_update())
