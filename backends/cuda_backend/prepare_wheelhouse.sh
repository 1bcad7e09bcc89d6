#!/usr/bin/env bash
# Download, on a machine with PyPI access, the wheels that gpu_check.sh may need on a GPU
# machine without network: the core's dependencies and the tests' (numpy, pluggy,
# safetensors, tqdm, pytest, pytest-benchmark, hypothesis, setuptools, wheel) with their
# own dependencies, for the GPU machine's Python and platform (x86-64 Linux).
#
#     bash backends/cuda_backend/prepare_wheelhouse.sh [DIR]     # default: shared/wheelhouse
#     PY_VERSIONS="3.11 3.12" bash backends/cuda_backend/prepare_wheelhouse.sh
#
# PY_VERSIONS defaults to 3.12: the lent GPU machines' python3 is 3.12 (the device
# machines' KINDS.md). One folder per version would be needed if several versions had
# different wheels; pip picks the matching ones from one folder, so they share DIR.
# The folder is added to .git/info/exclude so the wheels are never committed; name it in
# the device tool's `carry` so it travels. gpu_check.sh installs only the packages that
# are missing there, with `pip install --no-index --find-links DIR`.
# (The lent machines' image already has all of these; the wheelhouse is a fallback.)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${1:-$REPO/shared/wheelhouse}"
PY="${PYTHON:-python3}"
PY_VERSIONS="${PY_VERSIONS:-3.12}"
PACKAGES=(numpy pluggy safetensors tqdm pytest pytest-benchmark hypothesis setuptools wheel)
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

# Keep the wheels out of git when they are inside this checkout.
case "$DIR/" in
  "$REPO"/*)
    rel="/${DIR#"$REPO"/}/"
    exclude="$(git -C "$REPO" rev-parse --git-path info/exclude)"
    case "$exclude" in /*) ;; *) exclude="$REPO/$exclude" ;; esac
    mkdir -p "$(dirname "$exclude")"
    grep -qxF "$rel" "$exclude" 2>/dev/null || echo "$rel" >> "$exclude"
    ;;
esac

for v in $PY_VERSIONS; do
  echo "== wheels for CPython $v, x86-64 Linux -> $DIR"
  "$PY" -m pip download --only-binary=:all: --python-version "$v" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$DIR" "${PACKAGES[@]}"
done
echo "== $(find "$DIR" -name '*.whl' | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $DIR"
case "$DIR/" in
  "$REPO"/*) echo "carry it to the GPU machine with carry: [\"${DIR#"$REPO"/}\"]" ;;
  *) echo "copy it into the checkout (a folder that .git/info/exclude ignores) to carry it" ;;
esac
