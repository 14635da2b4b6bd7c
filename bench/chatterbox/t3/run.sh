#!/usr/bin/env bash
# T3 decode speed, vox (candle, CPU) vs the PyTorch reference (CPU, f32), full-size English
# config with random weights, 2 threads each, one after the other (never at once: ~2-4 GB each).
#
#   bench/chatterbox/t3/run.sh [STEPS=32] [REPEATS=3] [TEXT_TOKENS=40]
#
# Needs the reference venv at .cache/py/cb (tools/chatterbox/requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/../../.."
STEPS=${1:-32}; REPEATS=${2:-3}; TEXT=${3:-40}
out="bench/chatterbox/t3/results-$(date +%Y%m%d).txt"
cargo build --release -q -p vox-chatterbox --example t3_bench
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
{
  echo "# $(date -u +%FT%TZ) $(uname -m) $(nproc) cores; steps=$STEPS repeats=$REPEATS text_tokens=$TEXT"
  ./target/release/examples/t3_bench "$STEPS" "$REPEATS" "$TEXT" f32
  .cache/py/cb/bin/python bench/chatterbox/t3/run_reference.py "$STEPS" "$REPEATS" "$TEXT" 2>/dev/null
} | tee "$out"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
v = next(r for r in rows if r["impl"] == "vox"); p = next(r for r in rows if r["impl"] == "pytorch")
line = (f"ratio vox/pytorch decode steps/s: {v['decode_steps_per_s'] / p['decode_steps_per_s']:.2f}x; "
        f"peak RSS vox {v['peak_rss_mb']} MB vs pytorch {p['peak_rss_mb']} MB")
print(line); open(sys.argv[1], "a").write(line + "\n")
PY
