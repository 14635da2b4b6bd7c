#!/usr/bin/env bash
# Chatterbox through the server, end to end on CPU: a full-size random-weight snapshot (made once in .cache,
# never committed) imported into a fresh volume, `vox serve` (release build), one ~2-sentence POST /tts, then
# the wall time, the audio length and the real-time factor (RTF = wall seconds / audio seconds).
#
#   bench/chatterbox/server/run.sh [SPEECH_TOKENS=75] [THREADS=2]
#
# SPEECH_TOKENS fixes the utterance length (see make_snapshot.py: random weights never stop by themselves).
# Needs the reference venv at .cache/py/cb (tools/chatterbox/requirements.txt) and ~2.5 GB of disk.
set -euo pipefail
cd "$(dirname "$0")/../../.."
K=${1:-75}; THREADS=${2:-2}
work=.cache/bench/chatterbox-server
snap=$work/snapshot-$K
out="bench/chatterbox/server/results-$(date +%Y%m%d).txt"
[ -f "$snap/conds.pt" ] || .cache/py/cb/bin/python bench/chatterbox/server/make_snapshot.py "$snap" "$K"
# VOX_BIN: an already built release `vox` (e.g. from a clean worktree of a commit).
if [ -z "${VOX_BIN:-}" ]; then cargo build --release -q -p vox-cli; fi
vox=${VOX_BIN:-$PWD/target/release/vox}

rm -rf "$work/models"; mkdir -p "$work/models"
export MODELS_DIR=$PWD/$work/models HF_HUB_OFFLINE=1 VOX_LOG=info RAYON_NUM_THREADS=$THREADS
"$vox" models import "$snap" --as chatterbox-random >/dev/null
cat > "$work/manifest.toml" <<TOML
[[models]]
name = "chatterbox-random"
engine = "chatterbox"
repo = "vox-local/chatterbox-random"
revision = "main"
files = ["*"]
TOML

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$vox" serve --manifest "$work/manifest.toml" --bind "127.0.0.1:$port" --request-timeout 3600 \
  >"$work/serve.out" 2>"$work/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
t0=$(date +%s.%N)
until curl -sf "http://127.0.0.1:$port/ready" >/dev/null; do
  kill -0 $pid 2>/dev/null || { echo "vox serve exited:"; tail -20 "$work/serve.log"; exit 1; }
  sleep 1
done
ready_s=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")

text="The quick brown fox jumps over the lazy dog. Then it runs back home before the rain starts."
t1=$(date +%s.%N)
code=$(curl -s -o "$work/out.wav" -w '%{http_code}' "http://127.0.0.1:$port/tts" \
  -H 'content-type: application/json' \
  -d "{\"text\": \"$text\", \"format\": \"wav\", \"seed\": 1}")
t2=$(date +%s.%N)
[ "$code" = 200 ] || { echo "POST /tts answered $code: $(head -c 300 "$work/out.wav")"; exit 1; }

python3 - "$work/out.wav" "$t1" "$t2" "$ready_s" "$K" "$THREADS" <<'PY' | tee -a "$out"
import json, struct, sys, platform, os, time
wav, t1, t2, ready_s, k, threads = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
b = open(wav, "rb").read()
assert b[:4] == b"RIFF" and b[8:12] == b"WAVE"
rate = struct.unpack("<I", b[24:28])[0]
bits = struct.unpack("<H", b[34:36])[0]
audio_s = (len(b) - 44) / (bits // 8) / rate
wall = t2 - t1
print(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {platform.machine()} {os.cpu_count()} cores, "
      f"load average {os.getloadavg()[0]:.1f}; vox serve (release, CPU, f32), full-size random weights, "
      f"speech tokens per chunk {k}, RAYON_NUM_THREADS={threads}")
print(json.dumps({"impl": "vox serve", "request": "POST /tts wav, 2 sentences, seed 1", "ready_s": ready_s,
                  "wall_s": round(wall, 2), "audio_s": round(audio_s, 3), "rate": rate,
                  "rtf": round(wall / audio_s, 2)}))
PY
grep -E "chatterbox (loaded|chunk)" "$work/serve.log" | tail -5 || true
