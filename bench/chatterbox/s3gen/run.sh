#!/usr/bin/env bash
# S3Gen speed, vox (candle, CPU) vs the PyTorch reference (CPU, f32), shipped-size config with
# random weights, 2 threads each, one after the other: seconds of compute per second of audio.
#
#   bench/chatterbox/s3gen/run.sh [PROMPT_TOKENS=75] [TOKENS=75] [REPEATS=3]
#
# Needs the reference venv at .cache/py/cb (chatterbox-tts==0.1.7).
set -euo pipefail
cd "$(dirname "$0")/../../.."
P=${1:-75}; N=${2:-75}; R=${3:-3}
out="bench/chatterbox/s3gen/results-$(date +%Y%m%d).txt"
cargo build --release -q -p vox-chatterbox --example s3gen_bench
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2
{
  echo "# $(date -u +%FT%TZ) $(uname -m) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); prompt=$P tokens=$N repeats=$R"
  ./target/release/examples/s3gen_bench "$P" "$N" "$R" f32
  .cache/py/cb/bin/python bench/chatterbox/s3gen/run_reference.py "$P" "$N" "$R" 2>/dev/null
} | tee -a "$out"
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
v = [r for r in rows if r["impl"] == "vox"][-1]; p = [r for r in rows if r["impl"] == "pytorch"][-1]
line = (f"s/audio-s: vox {v['s_per_audio_s']} vs pytorch {p['s_per_audio_s']} -> vox {p['s_per_audio_s'] / v['s_per_audio_s']:.2f}x faster "
        f"(flow {p['flow_s'] / v['flow_s']:.2f}x, hift {p['hift_s'] / v['hift_s']:.2f}x); peak RSS vox {v['peak_rss_mb']} MB vs pytorch {p['peak_rss_mb']} MB")
print(line); open(sys.argv[1], "a").write(line + "\n")
PY
