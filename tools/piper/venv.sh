#!/usr/bin/env bash
# Creates (once) the Python environment of tools/piper/*.py and bench/piper/*.py under .cache: the pinned
# onnxruntime 1.32.0 wheel (sha256-checked) and numpy. Prints the venv's python.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/.cache/venv/piper-ref"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip --disable-pip-version-check -q install --only-binary=:all: \
    "onnxruntime==1.32.0" "numpy==2.4.6" \
    --find-links "$root/.cache/wheels"
fi
echo "$venv/bin/python"
