#!/usr/bin/env bash
# One GPU check of vox's `--features cuda` build, for a CUDA 13 machine with no Rust toolchain and no network.
# Run from the repository root with .device/ made by tools/device/prepare.sh (it carries the stripped release
# binaries, Whisper tiny.en re-encoded to int8 weights, and espeak-ng speech). Everything goes to $OUT/log
# (default OUT: /tmp/vox-gpu-check), the per-run JSON beside it.
#
#   OUT=/tmp/x tools/device/gpu-check.sh
#
# Steps (each bounded by `timeout`; a failing step is logged and the next one runs):
#   1. nvidia-smi; find the CUDA 13 libraries (/usr/local/cuda, a torch cu130 venv's nvidia/cu13/lib)
#   2. the Chatterbox parity tests (T3 logits, S3Gen stages and waveform) with VOX_DEVICE=cuda, then on the CPU
#   3. Whisper: stt_bench over the same files on CPU f32, CUDA f32 and CUDA f16 (texts + timings), transcripts
#      compared; `vox stt` on CPU and CUDA for two files (the CLI path, --device)
#   4. T3 decode steps/s and S3Gen time at full size with random weights on the GPU
# NVIDIA_TF32_OVERRIDE=0 keeps cuBLAS f32 products in full f32 (candle does not ask for TF32 either).
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
OUT="${OUT:-/tmp/vox-gpu-check}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log") 2>&1
dev=.device
bin=/tmp/vox-gpu-bin
step() { echo; echo "=== $* ($(date -u +%T))"; }
run() { # run LIMIT_S CMD...: logs the command and its exit status
  local limit=$1; shift
  echo "+ $*" >&2
  timeout "$limit" "$@"
  local rc=$?
  [ $rc -eq 0 ] || echo "!! exit $rc: $*" >&2
  return $rc
}

step "machine"
nvidia-smi || echo "!! no nvidia-smi"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv 2>/dev/null

step "libraries"
rm -rf "$bin" && mkdir -p "$bin"
for a in "$dev"/bin*.tar*; do
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$a" "$bin"
done
ls -la "$bin"
model=/tmp/vox-gpu-model
rm -rf "$model" && mkdir -p "$model"
python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$(ls "$dev"/model.tar* | head -n1)" "$model"
ls -la "$model"
libdirs=()
for so in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libcudart.so.13; do
  found=""
  for d in "${VOX_CUDA_LIBS:-}" /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 -c 'import nvidia, os; [print(os.path.join(p, "cu13", "lib")) for p in nvidia.__path__]' 2>/dev/null); do
    if [ -n "$d" ] && [ -e "$d/$so" ]; then found=$d; break; fi
  done
  [ -n "$found" ] || found="$(find /usr /opt -name "$so" -not -path '*/stubs/*' 2>/dev/null | head -n1 | xargs -r dirname)"
  echo "$so: ${found:-NOT FOUND}"
  [ -n "$found" ] && libdirs+=("$found")
done
LD_LIBRARY_PATH="$(printf '%s\n' "${libdirs[@]}" | awk '!seen[$0]++' | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH NVIDIA_TF32_OVERRIDE=0 RUST_BACKTRACE=1
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$bin/vox" | grep -E 'cuda|cublas|curand|nvrtc|not found'

step "chatterbox parity on CUDA"
fx=crates/vox-chatterbox/tests/fixtures
for t in t3_parity s3gen_parity; do
  VOX_DEVICE=cuda VOX_T3_FIXTURES="$root/$fx/t3/tiny" VOX_S3GEN_FIXTURES="$root/$fx/s3gen" \
    run 120 "$bin/$t" --test-threads=1 --nocapture
done
step "chatterbox parity on the CPU (same binaries)"
for t in t3_parity s3gen_parity; do
  VOX_DEVICE=cpu VOX_T3_FIXTURES="$root/$fx/t3/tiny" VOX_S3GEN_FIXTURES="$root/$fx/s3gen" \
    run 120 "$bin/$t" --test-threads=1 2>&1 | grep -E '^test |test result|SNR|panicked'
done

step "whisper stt_bench: CPU f32, CUDA f32, CUDA f16 (tiny.en int8 weights, beam 5)"
wavs=("$dev"/wav/s*.wav "$dev/wav/long70.wav")
for cfg in cpu:f32 cuda:f32 cuda:f16; do
  d=${cfg%%:*} c=${cfg##*:}
  VOX_DEVICE=$d VOX_COMPUTE=$c run 150 "$bin/stt_bench" "$model" "${VOX_PASSES:-3}" 5 "${wavs[@]}" >"$OUT/stt-$d-$c.json"
  python3 - "$OUT/stt-$d-$c.json" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit(f"no result: {e}")
print(f"{r['device']} {r['compute']}: load {r['load_s']:.2f} s, first call {r['first_call_s']:.2f} s, "
      f"{r['audio_s']:.1f} s audio in {r['total_wall_s_median']:.2f} s (median of passes), RTF {r['rtf']:.4f}, "
      f"peak RSS {r['peak_rss_mb']:.0f} MB")
PY
done
python3 - "$OUT" crates/vox-whisper/tests/golden/golden.json <<'PY'
import json, sys
from pathlib import Path
out, golden = Path(sys.argv[1]), json.load(open(sys.argv[2]))
runs = {}
for name in ["cpu-f32", "cuda-f32", "cuda-f16"]:
    try:
        runs[name] = {f["name"]: f for f in json.load(open(out / f"stt-{name}.json"))["files"]}
    except Exception:
        print(f"{name}: no result")
if "cpu-f32" not in runs:
    sys.exit()
cpu = runs["cpu-f32"]
for name, r in runs.items():
    same = [n for n in cpu if n in r and r[n]["text"].strip() == cpu[n]["text"].strip()]
    gold = [n for n in r if n in golden["beam5"] and r[n]["text"].strip() == golden["beam5"][n]["text"].strip()]
    print(f"{name}: {len(same)}/{len(cpu)} transcripts identical to cpu-f32; {len(gold)}/{len(r)} identical to "
          f"faster-whisper's fp16-weight golden beam5 text")
    for n in cpu:
        if n in r and r[n]["text"].strip() != cpu[n]["text"].strip():
            print(f"  {n}: cpu-f32 {cpu[n]['text'].strip()!r}\n  {' ' * len(n)}  {name} {r[n]['text'].strip()!r}")
    if name != "cpu-f32":
        print("  per-file wall s (median), " + name + " vs cpu-f32: " + ", ".join(
            f"{n} {r[n]['wall_s_median']:.3f}/{cpu[n]['wall_s_median']:.3f}" for n in ["s01", "s10", "long70"] if n in r))
PY

step "vox stt (CLI) on CPU and CUDA"
export MODELS_DIR=/tmp/vox-gpu-models VOX_LOG=info
rm -rf "$MODELS_DIR"
run 60 "$bin/vox" --offline models import "$model" --as tiny-en >/dev/null
printf '[[models]]\nname = "tiny-en"\nengine = "whisper"\nrepo = "vox-local/tiny-en"\nrevision = "main"\nfiles = ["*"]\n' \
  >/tmp/vox-gpu-manifest.toml
for f in ${VOX_STT_FILES:-s05 long70}; do
  for cfg in cpu:auto cuda:auto cuda:float32; do
    d=${cfg%%:*} c=${cfg##*:}
    echo "--- $f --device $d --compute $c"
    run 60 "$bin/vox" --offline stt "$dev/wav/$f.wav" -m /tmp/vox-gpu-manifest.toml --device "$d" --compute "$c" \
      >"$OUT/vox-stt-$f-$d-$c.txt" 2>"$OUT/vox-stt-$f-$d-$c.err"
    cat "$OUT/vox-stt-$f-$d-$c.txt"
    python3 -c 'import json, sys
for l in open(sys.argv[1]):
    try:
        m = json.loads(l)
    except ValueError:
        continue
    if m.get("message") == "transcribed":
        print("  cuda={cuda} load_s={load_s:.3f} transcribe_s={transcribe_s:.3f} audio_s={audio_s} rtf={rtf:.4f}".format(**m))' \
      "$OUT/vox-stt-$f-$d-$c.err"
    grep -iE 'error|panic' "$OUT/vox-stt-$f-$d-$c.err" | head -5
  done
  # Two empty outputs (a failed or missing binary) are not a match.
  if [ ! -s "$OUT/vox-stt-$f-cpu-auto.txt" ] || [ ! -s "$OUT/vox-stt-$f-cuda-auto.txt" ]; then
    echo "$f: NO TRANSCRIPT to compare"
  elif cmp -s "$OUT/vox-stt-$f-cpu-auto.txt" "$OUT/vox-stt-$f-cuda-auto.txt"; then
    echo "$f: CPU and CUDA transcripts identical"
  else
    echo "$f: CPU and CUDA transcripts DIFFER"
  fi
done
unset VOX_LOG

step "T3 decode on CUDA, full-size English config, random weights (64 steps, 3 repeats, 40 text tokens)"
for dt in f32 bf16 f16; do
  VOX_DEVICE=cuda run 120 "$bin/t3_bench" 64 3 40 "$dt"
done
step "S3Gen on CUDA, shipped config, random weights (75 prompt + 75 new tokens = 3 s audio)"
for dt in f32 f16; do
  VOX_DEVICE=cuda run 120 "$bin/s3gen_bench" 75 75 3 "$dt"
done
nvidia-smi --query-gpu=name,memory.used,temperature.gpu --format=csv 2>/dev/null
step "done"
