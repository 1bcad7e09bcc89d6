"""Turn pytest-benchmark JSON into a markdown report: ``python -m benchmarks.report``.

Usage::

    python -m benchmarks.report .benchmarks/bench.json -o docs/benchmarks.md

For every case and implementation the report gives the minimum and median time per
call, the achieved GFLOP/s or GB/s (from the ``flops``/``bytes`` each benchmark records in
``extra_info``) as a fraction of this machine's peak, and the time relative to the NumPy
reference backend (``needle-numpy``) and to the outside peer measured in the same run
(plain NumPy for kernels, PyTorch CPU for ops and models). It also records the CPU, core
and thread counts and the library and backend versions the conftest saved.

GPU rows (``extra_info["device"]`` is ``"cuda"``, as ``bench_gpu.py`` records) get GFLOP/s
and GB/s and the GPU's name, but no fraction of peak: the peaks here are the CPU's. Their
outside peer is PyTorch CUDA (``torch-cuda``).

This module uses the standard library only, so it can be loaded by file path in tests.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Peak numbers of the project's CI/developer machine (2-core AMD EPYC Zen 4, KVM guest),
# as measured in shared/MACHINE.md on 2026-11-26. Noise at 2 threads is large: compare
# implementations side by side within one run rather than against these alone.
FMA_PEAK_GFLOPS_PER_CORE = 117.0  # fp32 FMA, register-only loop; 234 GFLOP/s on both cores
ADD_BANDWIDTH_GBS = 31.0  # NumPy add of 16M float32 into a preallocated output (1 thread)

REFERENCE = "needle-numpy"
SUITES = ("kernels", "ops", "overhead", "models", "gpu")
SUITE_TITLES = {
    "kernels": "Kernels (flat float32 buffers, preallocated output)",
    "ops": "Ops (Tensor forward with graph recording, and backward)",
    "overhead": "Per-op overhead (tiny tensors)",
    "models": "Models (one training step: forward, loss, backward, SGD)",
    "gpu": "GPU: needle-cuda vs PyTorch CUDA (float32; no CPU peak fractions)",
}
PEERS = ("numpy", "torch", "torch-cuda")


@dataclass
class Row:
    """One benchmark result plus what the report derives from it."""

    suite: str
    case: str
    impl: str
    kind: str
    median: float
    minimum: float
    rounds: int
    flops: float | None = None
    nbytes: float | None = None
    unit: str = ""
    device: str = ""
    gpu: str = ""
    gflops: float | None = None
    peak_fraction: float | None = None
    gbs: float | None = None
    bandwidth_fraction: float | None = None
    vs_reference: float | None = None
    peer: str = ""
    vs_peer: float | None = None


def peak_gflops(threads: int, cores: int | None = None) -> float:
    """fp32 FMA peak for ``threads`` threads (no more than one per core counts)."""
    usable = max(1, min(threads, cores or threads))
    return FMA_PEAK_GFLOPS_PER_CORE * usable


# --- reading --------------------------------------------------------------------------
def load(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The benchmark entries and the documents (machine info etc.) of every JSON file."""
    entries: list[dict[str, Any]] = []
    docs: list[dict[str, Any]] = []
    for path in paths:
        doc = json.loads(Path(path).read_text())
        docs.append(doc)
        entries.extend(doc.get("benchmarks", []))
    return entries, docs


def to_rows(entries: Iterable[dict[str, Any]]) -> list[Row]:
    """One :class:`Row` per entry that names its suite, case and implementation."""
    rows = []
    for e in entries:
        info = e.get("extra_info", {})
        stats = e.get("stats", {})
        if not {"suite", "case", "impl"} <= info.keys() or "median" not in stats:
            continue  # not one of ours (or a disabled run)
        rows.append(
            Row(
                suite=info["suite"],
                case=info["case"],
                impl=info["impl"],
                kind=info.get("kind", ""),
                median=float(stats["median"]),
                minimum=float(stats.get("min", stats["median"])),
                rounds=int(stats.get("rounds", 0)),
                flops=info.get("flops"),
                nbytes=info.get("bytes"),
                unit=info.get("unit", ""),
                device=info.get("device", ""),
                gpu=info.get("gpu", ""),
            )
        )
    return rows


# --- deriving -------------------------------------------------------------------------
def is_cpu(r: Row) -> bool:
    """Whether a row ran on the CPU (rows that record no device did)."""
    return r.device in ("", "cpu")


def derive(rows: list[Row], threads: int, cores: int | None = None, stat: str = "min") -> list[Row]:
    """Fill in throughput, fraction of peak, and ratios to the reference and the peer.

    Everything derives from the ``stat`` time of each row (``"min"``, the default, is the
    least disturbed by other work on the machine; or ``"median"``). Ratios are times:
    ``vs_reference = t / t(needle-numpy)`` and ``vs_peer = t / t(peer)``, so below 1 is
    faster. The peer of a case is plain NumPy where it was measured, else PyTorch (CPU,
    else CUDA). GPU rows get no fraction of peak: the peaks are the CPU's.
    """
    if stat not in ("min", "median"):
        raise ValueError(f"derive: stat must be 'min' or 'median', got {stat!r}")

    def t(r: Row) -> float:
        return r.minimum if stat == "min" else r.median

    by_case: dict[tuple[str, str], dict[str, Row]] = {}
    for r in rows:
        by_case.setdefault((r.suite, r.case), {})[r.impl] = r
    peak = peak_gflops(threads, cores)
    for r in rows:
        cpu = is_cpu(r)
        if r.flops and t(r) > 0:
            r.gflops = r.flops / t(r) / 1e9
            r.peak_fraction = r.gflops / peak if cpu else None
        if r.nbytes and t(r) > 0:
            r.gbs = r.nbytes / t(r) / 1e9
            r.bandwidth_fraction = r.gbs / ADD_BANDWIDTH_GBS if cpu else None
        group = by_case[(r.suite, r.case)]
        ref = group.get(REFERENCE)
        if ref is not None and t(ref) > 0:
            r.vs_reference = t(r) / t(ref)
        peer = next((group[p] for p in PEERS if p in group), None)
        if peer is not None and t(peer) > 0:
            r.peer = peer.impl
            r.vs_peer = t(r) / t(peer)
    return rows


# --- formatting -----------------------------------------------------------------------
def fmt_time(seconds: float, unit: str = "") -> str:
    """``1.23 ms``-style time; ``unit="us"`` forces microseconds."""
    if unit == "us" or seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs" if seconds < 1e-4 else f"{seconds * 1e6:.1f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _num(x: float | None, digits: int = 1) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.0f}%"


def _ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


def _impl_order(name: str) -> tuple[int, str]:
    order = {"needle-numpy": 0, "needle-cpp": 1, "needle-cuda": 2, "numpy": 8, "torch": 9}
    return (order.get(name, 5 if name.startswith("needle-") else 7), name)


def suite_table(rows: list[Row]) -> str:
    """A markdown table of one suite: a row per (case, implementation)."""
    has_flops = any(r.gflops is not None for r in rows)
    has_bytes = any(r.gbs is not None for r in rows)
    has_cpu = any(is_cpu(r) for r in rows)  # CPU rows: fractions of the CPU's peaks
    has_gpu = not all(is_cpu(r) for r in rows)  # GPU rows: a column naming the GPU
    peers = sorted({r.peer for r in rows if r.peer})
    head = ["case", "impl"] + (["GPU"] if has_gpu else []) + ["min", "median", "rounds"]
    if has_flops:
        head += ["GFLOP/s"] + (["% FMA peak"] if has_cpu else [])
    if has_bytes:
        head += ["GB/s"] + (["% add BW"] if has_cpu else [])
    has_ref = any(r.vs_reference is not None for r in rows) or has_cpu
    head += [f"t / t({REFERENCE})"] if has_ref else []
    head += [f"t / t({'/'.join(peers) or 'peer'})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    cases: dict[str, list[Row]] = {}
    for r in rows:
        cases.setdefault(r.case, []).append(r)
    for case, group in cases.items():
        for i, r in enumerate(sorted(group, key=lambda r: _impl_order(r.impl))):
            cells = [case if i == 0 else "", r.impl]
            if has_gpu:
                cells.append("" if is_cpu(r) else r.gpu or r.device)
            cells += [fmt_time(r.minimum, r.unit), fmt_time(r.median, r.unit), str(r.rounds)]
            if has_flops:
                cells += [_num(r.gflops)] + ([_pct(r.peak_fraction)] if has_cpu else [])
            if has_bytes:
                cells += [_num(r.gbs)] + ([_pct(r.bandwidth_fraction)] if has_cpu else [])
            cells += [_ratio(r.vs_reference)] if has_ref else []
            cells += [_ratio(r.vs_peer)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_section(docs: Sequence[dict[str, Any]], threads: int) -> str:
    """CPU, cores, threads, versions and BLAS, from the first file's machine info."""
    doc = docs[0] if docs else {}
    mi = doc.get("machine_info", {})
    nb = mi.get("needle_bench", {})
    versions = dict(nb.get("versions", {}))
    cpu = nb.get("cpu_model") or mi.get("cpu", {}).get("brand_raw") or mi.get("processor", "?")
    lines = [
        f"- CPU: {cpu} ({mi.get('machine', '?')}, {mi.get('system', '?')} {mi.get('release', '')})",
        f"- cores: {nb.get('cores', '?')}; threads given to every implementation: {threads} "
        "(OMP_NUM_THREADS for needle-cpp and PyTorch's OpenMP, threadpoolctl/"
        "OPENBLAS_NUM_THREADS for NumPy's OpenBLAS, torch.set_num_threads"
        + (f" = {nb['torch_threads']}" if "torch_threads" in nb else "")
        + ")",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v),
    ]
    backends = nb.get("backends", {})
    if backends:
        parts = []
        for name, b in backends.items():
            state = "usable" if b.get("usable") else f"not usable: {b.get('reason', '')}"
            parts.append(f"{name} {b.get('version', '')} ({state})")
        lines.append("- needle backends: " + "; ".join(parts))
    for lib in nb.get("blas", []):
        if lib.get("user_api") == "blas":
            lines.append(
                f"- BLAS: {lib.get('internal_api')} {lib.get('version')}, "
                f"{lib.get('architecture')} kernels, {lib.get('num_threads')} threads"
                f" (OPENBLAS_CORETYPE={nb.get('openblas_coretype') or 'unset'}"
                f", OPENBLAS_THREAD_TIMEOUT={nb.get('openblas_thread_timeout') or 'unset'})"
            )
    start, end = nb.get("loadavg_start"), nb.get("loadavg_end")
    if start or end:
        cores = nb.get("cores") or 1
        busy = max((start or [0])[0], (end or [0])[0]) > 0.5 * cores
        lines.append(
            f"- load average (1, 5, 15 min) at start {start}, at end {end}"
            + (
                ": **the machine was busy with other work; timings are inflated and noisy**"
                if busy
                else ""
            )
        )
    if doc.get("datetime"):
        lines.append(f"- measured: {doc['datetime']}")
    commit = doc.get("commit_info", {})
    if commit.get("id"):
        dirty = " (with uncommitted changes)" if commit.get("dirty") else ""
        lines.append(f"- commit: {commit['id'][:12]}{dirty}")
    if nb.get("command"):
        lines.append(f"- benchmark command: `{nb['command']}`")
    if nb.get("quick"):
        lines.append("- **quick mode**: sizes were shrunk; these numbers mean nothing")
    return "\n".join(lines)


PAIRED_TITLE = "Issue 12: replayed needle-cpp against PyTorch, timed in turn"
PAIRED_NOTE = """\
Each round calls needle and PyTorch one after the other (the order alternating), in one
process, both on the same threads (`benchmarks/bench_paired.py`): a slow spell of the
machine falls on both. *needle* and *torch* are each side's minimum time per call, *ratio
of minima* the one over the other; *median ratio* is the median of the rounds' own ratios
(needle's call over the PyTorch call made just before or after it). A case meets issue
12's *target* when its median ratio is at most the target: the two calls of a round see
the same machine, while the two minima may come from different moments (one side can
catch a quiet spell the other missed). The suites below time each implementation in its
own stretch of the run instead."""


def paired_table(entries: Iterable[dict[str, Any]]) -> str:
    """The side-by-side table of ``bench_paired.py``'s entries ("" when there are none)."""
    lines = []
    for e in entries:
        info = e.get("extra_info", {})
        if info.get("suite") != "paired" or "needle_min" not in info:
            continue
        target = info.get("target")
        ratio = float(info["needle_min"]) / float(info["torch_min"])
        median = float(info["median_ratio"])
        met = "" if target is None else ("yes" if median <= float(target) else "**no**")
        cells = [
            info.get("case", "?"),
            fmt_time(float(info["needle_min"])),
            fmt_time(float(info["torch_min"])),
            f"{ratio:.2f}",
            f"{median:.2f}",
            str(e.get("stats", {}).get("rounds", "")),
            "" if target is None else f"≤ {float(target):.1f}",
            met,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if not lines:
        return ""
    head = "| case | needle | torch | ratio of minima | median ratio | rounds | target | met |"
    return "\n".join([head, "|" + "---|" * 8, *lines])


REGRESSIONS = """\
## Reading the numbers, and checking for regressions

- *min*/*median*: wall time per call (kernels and ops: per kernel or op call; models: per
  training step) over *rounds* rounds. Devices with a `synchronize` kernel are synchronized
  inside the timing. Throughput and ratios derive from the {stat} time, the one least
  disturbed by other work on the machine.
- *GFLOP/s* uses the nominal FLOPs each benchmark records (matmul `2n³`, convolution
  `2·N·H·W·k²·C_in·C_out`, a training step three times the forward pass's matmul and
  convolution work); memory-bound kernels record bytes instead;
  *% FMA peak* divides by {peak:.0f} GFLOP/s ({per_core:.0f} per core times threads, from
  `shared/MACHINE.md`).
- *GB/s* counts the bytes a kernel must read and write once; *% add BW* divides by
  {bw:.0f} GB/s, what NumPy's add of 16M float32 into a preallocated output reaches here.
  GPU rows (column *GPU*) have no such fractions: these peaks are the CPU's.
- *t / t(...)*: time relative to the NumPy reference backend and to the outside peer of
  the same run (plain NumPy for kernels, PyTorch CPU for ops and models): below 1 is faster.

Regressions are checked by hand, not by CI (timings at 2 threads are noisy):

```
pytest benchmarks --benchmark-autosave            # before a change: saves .benchmarks/…/0001_*.json
pytest benchmarks --benchmark-compare --benchmark-compare-fail=min:10%   # after it
```

`--benchmark-compare` compares against the latest saved run; `--benchmark-compare-fail=min:10%`
fails any benchmark whose minimum got more than 10% slower. Restrict a run with `-k`
(e.g. `-k "matmul and needle-cpp"`) or to some backends with
`NEEDLE_BENCH_BACKENDS=numpy,cpp`; `NEEDLE_BENCH_THREADS` sets the thread count.
"""


def render(
    docs: Sequence[dict[str, Any]],
    rows: list[Row],
    command: str,
    threads: int,
    stat: str = "min",
    paired: str = "",
) -> str:
    """The whole markdown document (``paired``: :func:`paired_table`'s table, first)."""
    cores = docs[0].get("machine_info", {}).get("needle_bench", {}).get("cores") if docs else None
    peak = peak_gflops(threads, cores)
    out = [
        "# needle benchmarks",
        "",
        f"Generated by `{command}`.",
        "",
        "## Machine",
        "",
        machine_section(docs, threads),
        "",
    ]
    if paired:
        out += [f"## {PAIRED_TITLE}", "", PAIRED_NOTE, "", paired, ""]
    suites = [s for s in SUITES if any(r.suite == s for r in rows)]
    suites += sorted({r.suite for r in rows} - set(SUITES))
    for suite in suites:
        out += [
            f"## {SUITE_TITLES.get(suite, suite)}",
            "",
            suite_table([r for r in rows if r.suite == suite]),
            "",
        ]
    if not rows and not paired:
        out += ["No benchmark results (was the run made with `--benchmark-disable`?).", ""]
    out.append(
        REGRESSIONS.format(
            peak=peak, per_core=FMA_PEAK_GFLOPS_PER_CORE, bw=ADD_BANDWIDTH_GBS, stat=stat
        )
    )
    return "\n".join(out)


def report(paths: Sequence[str | Path], command: str, stat: str = "min") -> str:
    """Load, derive and render: the markdown for the JSON files ``paths``."""
    entries, docs = load(paths)
    nb = docs[0].get("machine_info", {}).get("needle_bench", {}) if docs else {}
    threads = int(nb.get("threads") or 1)
    # the pairs have their own table; the suite tables list one implementation per row
    suites = [e for e in entries if e.get("extra_info", {}).get("suite") != "paired"]
    rows = derive(to_rows(suites), threads, nb.get("cores"), stat)
    return render(docs, rows, command, threads, stat, paired_table(entries))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("json", nargs="+", help="pytest-benchmark JSON files (--benchmark-json)")
    parser.add_argument("-o", "--output", help="markdown file to write (default: stdout)")
    parser.add_argument(
        "--command",
        help="the command line to print at the top (default: this report's own command line)",
    )
    parser.add_argument(
        "--stat",
        choices=["min", "median"],
        default="min",
        help="the time that throughput and ratios derive from (default: min)",
    )
    args = parser.parse_args(argv)
    own = "python -m benchmarks.report " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = report(args.json, args.command or own, args.stat)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
