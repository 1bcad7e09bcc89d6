#!/usr/bin/env bash
# GPU check for needle-cuda. Run on a machine with a CUDA GPU and CuPy preinstalled
# (e.g. cupy-cuda13x), from anywhere inside a checkout of this repository:
#
#     OUT=/some/folder bash backends/cuda_backend/gpu_check.sh
#
# Installs the core, the NumPy backend and the CUDA backend (and the conformance suite
# when present) with `pip install --no-deps -e` (CuPy is preinstalled there; where pip
# cannot build offline, the packages run from the source tree with a minimal .dist-info
# carrying their entry points); then runs the
# compile check, the CUDA backend's tests and the shared conformance suite on `cuda`.
# Everything is written under $OUT (default: ./gpu_check_out); summary.txt says what passed.
# Exit status: that of the CUDA backend's tests.
set -u
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${OUT:-$REPO/gpu_check_out}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
cd "$REPO"

{
  echo "== date: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi 2>&1 || echo "nvidia-smi not available"
  "$PY" --version
  "$PY" - <<'PYEOF'
import importlib
for mod in ("numpy", "cupy", "pluggy", "pytest"):
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
PYEOF
} > "$OUT/env.txt" 2>&1

# --- install (no downloads: --no-deps; first without build isolation) -------------------
: > "$OUT/install.log"
FALLBACK="$OUT/fallback-site"
failed_pkgs=()
for pkg in . backends/numpy_backend backends/cuda_backend conformance; do
  [ -f "$pkg/pyproject.toml" ] || continue
  ok=0
  for iso in --no-build-isolation ""; do
    echo "== pip install --no-deps $iso -e $pkg" >> "$OUT/install.log"
    if "$PY" -m pip install --no-deps $iso -e "$pkg" >> "$OUT/install.log" 2>&1; then ok=1; break; fi
  done
  [ $ok = 1 ] || { echo "!! install of $pkg failed" >> "$OUT/install.log"; failed_pkgs+=("$pkg"); }
done
# Packages pip could not install run from the source tree, with a minimal .dist-info
# carrying their entry points (so needle and pytest still discover the plugins).
export PYTHONPATH="$REPO/core:$REPO/backends/numpy_backend:$REPO/backends/cuda_backend:$REPO/conformance${PYTHONPATH:+:$PYTHONPATH}"
if [ ${#failed_pkgs[@]} -gt 0 ]; then
  mkdir -p "$FALLBACK"
  export PYTHONPATH="$FALLBACK:$PYTHONPATH"
  "$PY" - "$FALLBACK" "${failed_pkgs[@]}" >> "$OUT/install.log" 2>&1 <<'PYEOF'
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

# --- what the plugin reports -------------------------------------------------------------
"$PY" - > "$OUT/status.txt" 2>&1 <<'PYEOF'
from needle_cuda import plugin
print(plugin.needle_backend_info())
print(plugin.needle_backend_status())
PYEOF

# --- compile check (nvcc, when the machine has it) ---------------------------------------
"$PY" -m needle_cuda.compile_check --arch sm_90 > "$OUT/compile_check.txt" 2>&1
compile_rc=$?

# --- the CUDA backend's tests --------------------------------------------------------------
"$PY" -m pytest backends/cuda_backend/tests -ra -p no:cacheprovider \
  --junitxml="$OUT/cuda_tests.xml" > "$OUT/cuda_tests.txt" 2>&1
tests_rc=$?

# --- the shared conformance suite (written by others; may not exist yet) -------------------
( "$PY" -m pytest --pyargs needle_conformance --needle-backend=cuda -ra -p no:cacheprovider \
    --junitxml="$OUT/conformance.xml" > "$OUT/conformance.txt" 2>&1 ) || true
conf_line="$(tail -n 1 "$OUT/conformance.txt" 2>/dev/null)"

{
  echo "compile_check rc=$compile_rc: $(tail -n 1 "$OUT/compile_check.txt")"
  echo "cuda tests    rc=$tests_rc: $(tail -n 1 "$OUT/cuda_tests.txt")"
  echo "conformance        : ${conf_line:-no output}"
  echo "status             : $(tail -n 1 "$OUT/status.txt")"
} > "$OUT/summary.txt"
cat "$OUT/summary.txt"
exit $tests_rc
