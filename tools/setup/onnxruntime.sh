#!/usr/bin/env bash
# Installs the ONNX Runtime shared library that vox loads at run time (vox-onnx): pip downloads the pinned
# onnxruntime 1.32.0 wheel (cp311, manylinux_2_28 x86_64; checked by sha256) and extracts
# onnxruntime/capi/libonnxruntime.so.1.32.0. The wheel is chosen with --platform/--python-version, so the host's
# own Python version does not matter; only pip is needed. Idempotent.
#
#   tools/setup/onnxruntime.sh [DEST]   # default DEST: .cache/onnxruntime/1.32.0 of this source tree
#
# vox finds DEST/libonnxruntime.so.1.32.0 by itself when DEST is the default; otherwise set
# VOX_ORT_DYLIB=DEST/libonnxruntime.so.1.32.0 or copy the file next to the vox binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
version=1.32.0
sha256=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
dest="${1:-$root/.cache/onnxruntime/$version}"
lib="libonnxruntime.so.$version"
if [ -f "$dest/$lib" ]; then
  echo "$dest/$lib"
  exit 0
fi
python="${VOX_PYTHON:-python3}"
wheels="$root/.cache/wheels"
mkdir -p "$wheels" "$dest"
req="$(mktemp)"
trap 'rm -f "$req"' EXIT
echo "onnxruntime==$version --hash=sha256:$sha256" >"$req"
pip=("$python" -m pip --disable-pip-version-check -q)
"${pip[@]}" download --no-deps --only-binary=:all: --require-hashes \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
  -r "$req" -d "$wheels"
whl="$wheels/onnxruntime-$version-cp311-cp311-manylinux_2_28_x86_64.whl"
# Extract with Python's zipfile (no unzip needed); write to a temp name, then rename, so a killed run leaves
# no half file that a later run would take as installed.
"$python" - "$whl" "$dest" "$lib" <<'PY'
import os, shutil, sys, zipfile
whl, dest, lib = sys.argv[1:]
tmp = os.path.join(dest, lib + ".part")
with zipfile.ZipFile(whl) as z, z.open("onnxruntime/capi/" + lib) as src, open(tmp, "wb") as out:
    shutil.copyfileobj(src, out)
os.chmod(tmp, 0o755)
os.replace(tmp, os.path.join(dest, lib))
PY
echo "$dest/$lib"
