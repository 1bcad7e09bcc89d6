#!/usr/bin/env bash
# GPU check for needle-cuda. Run on a machine with a CUDA GPU and CuPy preinstalled
# (e.g. cupy-cuda13x), from anywhere inside a checkout of this repository:
#
#     OUT=/some/folder bash backends/cuda_backend/gpu_check.sh
#     BUNDLE=1 OUT=$OUT bash backends/cuda_backend/gpu_check.sh   # on the lent GPU machine
#
# 1. Records the machine (env.txt; nvidia_smi.csv: GPU name, driver, memory) and checks up
#    front that the Python packages the core and the tests need are importable; the
#    missing ones are named in summary.txt. Where a wheelhouse is given (WHEELHOUSE=dir,
#    default shared/wheelhouse when it exists; see prepare_wheelhouse.sh) the missing ones
#    are installed from it with `pip install --no-index --find-links`.
# 2. Installs the core, the NumPy backend and the CUDA backend (and the conformance suite
#    when present) with `pip install --no-deps -e` (CuPy is preinstalled there; where pip
#    cannot build offline, the packages run from the source tree with a minimal .dist-info
#    carrying their entry points).
# 3. Runs the compile check, the CUDA backend's tests, the shared conformance suite on
#    `cuda`, then the GPU benchmarks (benchmarks/bench_gpu.py: needle-cuda vs PyTorch CUDA)
#    into bench_gpu.json and their report benchmarks_gpu.md.
#
# Every stage runs under its own time cap and the script goes on whatever a stage returns,
# so partial results still come back; summary.txt (written as the stages end) gives each
# stage's exit status and time. Caps, in seconds (0 skips the stage): T_COMPILE=60,
# T_TESTS=120, T_CONF=90, T_BENCH=150. Together with the install the whole run stays under
# about 7.5 minutes even when every stage runs into its cap.
#
# BUNDLE=1 (for machines that return only a few files, such as the lent GPU machine, which
# returns at most 8): the logs go to a folder outside $OUT and are packed into
# $OUT/logs.tar.gz after every stage, so $OUT never holds more than six files: summary.txt,
# env.txt, nvidia_smi.csv, bench_gpu.json, benchmarks_gpu.md and logs.tar.gz.
# Without BUNDLE every log is written straight into $OUT, as before.
#
# Exit status: that of the CUDA backend's tests.
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$REPO/gpu_check_out}"
PY="${PYTHON:-python3}"
BUNDLE="${BUNDLE:-0}"
T_COMPILE="${T_COMPILE:-60}"
T_TESTS="${T_TESTS:-120}"
T_CONF="${T_CONF:-90}"
T_BENCH="${T_BENCH:-150}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cd "$REPO"
if [ "$BUNDLE" = 1 ]; then
  LOG="${LOG_DIR:-${TMPDIR:-/tmp}/needle_gpu_check_logs}"
  rm -rf "$LOG"
else
  LOG="$OUT"
fi
mkdir -p "$LOG"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
START=$(date +%s)
note() { echo "$*" >> "$SUMMARY"; }
last() { grep -v '^[[:space:]]*$' "$1" 2>/dev/null | tail -n 1; }  # last non-blank line
detail() { [ "$STAGE_RC" = skipped ] || note "  $(last "$1")"; }  # a stage's closing line
pack() {  # BUNDLE=1: refresh $OUT/logs.tar.gz from the log folder
  [ "$BUNDLE" = 1 ] || return 0
  tar -czf "$OUT/logs.tar.gz.tmp" -C "$LOG" --exclude=fallback-site . 2>/dev/null \
    && mv -f "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"
}
# run_stage NAME CAP CMD...: run CMD under a time cap (SIGINT first, so pytest still writes
# its reports), record "NAME rc=.. (..s)" in summary.txt; sets STAGE_RC.
run_stage() {
  local name="$1" cap="$2" t0 rc
  shift 2
  if [ "$cap" = 0 ]; then
    STAGE_RC=skipped
    note "$(printf '%-15s: skipped (cap 0)' "$name")"
    return 0
  fi
  t0=$(date +%s)
  timeout -s INT -k 20 "$cap" "$@"
  rc=$?
  [ $rc = 124 ] && rc="124 (time cap ${cap}s reached)"
  STAGE_RC="$rc"
  note "$(printf '%-15s: rc=%s (%ss)' "$name" "$rc" "$(( $(date +%s) - t0 ))")"
  pack
}
note "== needle gpu_check, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"

# --- the machine ---------------------------------------------------------------------------
if nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv \
  > "$OUT/nvidia_smi.csv" 2>&1; then
  note "gpu            : $(tail -n +2 "$OUT/nvidia_smi.csv" | paste -sd ';')"
else
  echo "nvidia-smi not available or failed" >> "$OUT/nvidia_smi.csv"
  note "gpu            : nvidia-smi not available or failed (no GPU here?)"
fi
{
  echo "== date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi 2>&1 || echo "nvidia-smi not available"
  "$PY" --version
  "$PY" - <<'PYEOF'
import importlib
for mod in ("numpy", "cupy", "pluggy", "pytest", "pytest_benchmark", "torch"):
    try:
        m = importlib.import_module(mod)
        print(mod, getattr(m, "__version__", "?"))
    except Exception as exc:
        print(mod, "MISSING:", exc)
try:
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
    print("devices:", n)
    for i in range(n):
        p = cupy.cuda.runtime.getDeviceProperties(i)
        print(f"  cuda:{i}", p["name"].decode(), "cc", p["major"], p["minor"])
except Exception as exc:
    print("cupy device query failed:", exc)
try:
    import torch
    print("torch cuda:", torch.version.cuda, "available:", torch.cuda.is_available())
except Exception as exc:
    print("torch query failed:", exc)
PYEOF
} > "$OUT/env.txt" 2>&1

# --- Python packages needed here (checked before anything is installed) -------------------
# Prints the missing distributions on stdout, one line: required ones, then "|", then the
# GPU ones (CuPy for needle-cuda, PyTorch for the benchmark peer).
missing_deps() {
  "$PY" - <<'PYEOF'
import importlib.util
required = {  # module: distribution -- the core's dependencies, the tests', pip's build
    "numpy": "numpy", "pluggy": "pluggy", "safetensors": "safetensors", "tqdm": "tqdm",
    "pytest": "pytest", "pytest_benchmark": "pytest-benchmark", "hypothesis": "hypothesis",
    "setuptools": "setuptools",
}
gpu = {"cupy": "cupy-cuda13x", "torch": "torch"}
def missing(mods):
    out = []
    for mod, dist in mods.items():
        try:
            found = importlib.util.find_spec(mod) is not None
        except Exception:
            found = False
        if not found:
            out.append(dist)
    return out
print(" ".join(missing(required)), "|", " ".join(missing(gpu)))
PYEOF
}
: > "$LOG/install.log"
deps="$(missing_deps 2>>"$LOG/install.log")"
req_missing="$(echo "${deps%%|*}" | xargs)"
WHEELHOUSE="${WHEELHOUSE:-}"
[ -z "$WHEELHOUSE" ] && [ -d "$REPO/shared/wheelhouse" ] && WHEELHOUSE="$REPO/shared/wheelhouse"
if [ -n "$req_missing" ]; then
  note "python deps    : MISSING: $req_missing"
  if [ -n "$WHEELHOUSE" ] && [ -d "$WHEELHOUSE" ]; then
    echo "== pip install --no-index --find-links $WHEELHOUSE $req_missing" >> "$LOG/install.log"
    # shellcheck disable=SC2086
    "$PY" -m pip install --no-index --find-links "$WHEELHOUSE" $req_missing >> "$LOG/install.log" 2>&1
    note "wheelhouse     : pip rc=$? from $WHEELHOUSE"
    deps="$(missing_deps 2>>"$LOG/install.log")"
    req_missing="$(echo "${deps%%|*}" | xargs)"
    note "python deps    : ${req_missing:+still MISSING: }${req_missing:-all present after the wheelhouse}"
  else
    note "wheelhouse     : none (WHEELHOUSE=${WHEELHOUSE:-unset}); see prepare_wheelhouse.sh"
  fi
else
  note "python deps    : all present (numpy pluggy safetensors tqdm pytest pytest-benchmark hypothesis setuptools)"
fi
gpu_missing="$(echo "${deps#*|}" | xargs)"
[ -n "$gpu_missing" ] && note "gpu packages   : MISSING: $gpu_missing (their tests and benchmarks skip)"

# --- install (no downloads: --no-deps; first without build isolation) -------------------
FALLBACK="$LOG/fallback-site"
failed_pkgs=()
for pkg in . backends/numpy_backend backends/cuda_backend conformance; do
  [ -f "$pkg/pyproject.toml" ] || continue
  ok=0
  for iso in --no-build-isolation ""; do
    echo "== pip install --no-deps $iso -e $pkg" >> "$LOG/install.log"
    if "$PY" -m pip install --no-deps $iso -e "$pkg" >> "$LOG/install.log" 2>&1; then ok=1; break; fi
  done
  [ $ok = 1 ] || { echo "!! install of $pkg failed" >> "$LOG/install.log"; failed_pkgs+=("$pkg"); }
done
note "install        : ${failed_pkgs[*]:+from the source tree (pip failed): ${failed_pkgs[*]}}${failed_pkgs[*]:-pip install -e ok}"
# Packages pip could not install run from the source tree, with a minimal .dist-info
# carrying their entry points (so needle and pytest still discover the plugins).
export PYTHONPATH="$REPO/core:$REPO/backends/numpy_backend:$REPO/backends/cuda_backend:$REPO/conformance${PYTHONPATH:+:$PYTHONPATH}"
if [ ${#failed_pkgs[@]} -gt 0 ]; then
  mkdir -p "$FALLBACK"
  export PYTHONPATH="$FALLBACK:$PYTHONPATH"
  "$PY" - "$FALLBACK" "${failed_pkgs[@]}" >> "$LOG/install.log" 2>&1 <<'PYEOF'
import sys, tomllib
from pathlib import Path
site = Path(sys.argv[1])
for pkg in sys.argv[2:]:
    proj = tomllib.loads((Path(pkg) / "pyproject.toml").read_text())["project"]
    name, version = proj["name"], proj.get("version", "0")
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    groups = dict(proj.get("entry-points", {}))
    if proj.get("scripts"):
        groups["console_scripts"] = proj["scripts"]
    lines = []
    for group, eps in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    print(f"fallback dist-info for {name} ({pkg}) in {site}")
PYEOF
fi
pack

# --- what the plugin reports -------------------------------------------------------------
"$PY" - > "$LOG/status.txt" 2>&1 <<'PYEOF'
from needle_cuda import plugin
print(plugin.needle_backend_info())
print(plugin.needle_backend_status())
PYEOF
note "status         : $(last "$LOG/status.txt")"

# --- compile check (nvcc, when the machine has it) ---------------------------------------
run_stage compile_check "$T_COMPILE" \
  "$PY" -m needle_cuda.compile_check --arch sm_90 > "$LOG/compile_check.txt" 2>&1
detail "$LOG/compile_check.txt"

# --- the CUDA backend's tests --------------------------------------------------------------
run_stage "cuda tests" "$T_TESTS" \
  "$PY" -m pytest backends/cuda_backend/tests -ra -p no:cacheprovider \
  --junitxml="$LOG/cuda_tests.xml" > "$LOG/cuda_tests.txt" 2>&1
tests_rc="${STAGE_RC%% *}"
detail "$LOG/cuda_tests.txt"

# --- the shared conformance suite (written by others; may not exist yet) -------------------
run_stage conformance "$T_CONF" \
  "$PY" -m pytest --pyargs needle_conformance --needle-backend=cuda -ra -p no:cacheprovider \
  --junitxml="$LOG/conformance.xml" > "$LOG/conformance.txt" 2>&1
detail "$LOG/conformance.txt"

# --- GPU benchmarks: needle-cuda vs PyTorch CUDA, and their report -------------------------
rm -f "$OUT/bench_gpu.json" "$OUT/benchmarks_gpu.md"
PYTHONUNBUFFERED=1 run_stage benchmarks "$T_BENCH" \
  "$PY" -m pytest benchmarks/bench_gpu.py -ra -p no:cacheprovider \
  --benchmark-json="$OUT/bench_gpu.json" --benchmark-min-rounds=3 --benchmark-max-time=0.5 \
  --benchmark-columns=min,median,rounds --benchmark-sort=fullname > "$LOG/bench_gpu.txt" 2>&1
detail "$LOG/bench_gpu.txt"
grep -E '^(SKIPPED|FAILED|ERROR)' "$LOG/bench_gpu.txt" 2>/dev/null | head -n 8 | sed 's/^/  /' >> "$SUMMARY"
if [ -s "$OUT/bench_gpu.json" ]; then
  run_stage report 60 "$PY" -m benchmarks.report "$OUT/bench_gpu.json" -o "$OUT/benchmarks_gpu.md" \
    --command "bash backends/cuda_backend/gpu_check.sh  # runs: pytest benchmarks/bench_gpu.py --benchmark-json=bench_gpu.json --benchmark-min-rounds=3 --benchmark-max-time=0.5 && python -m benchmarks.report bench_gpu.json -o benchmarks_gpu.md" \
    > "$LOG/report.txt" 2>&1
else
  note "report         : no bench_gpu.json, so no benchmarks_gpu.md"
fi

note "total          : $(( $(date +%s) - START ))s; cuda tests exit status ${tests_rc}"
pack
cat "$SUMMARY"
case "$tests_rc" in
  '' | *[!0-9]*) exit 1 ;;
  *) exit "$tests_rc" ;;
esac
