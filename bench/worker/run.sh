#!/usr/bin/env bash
# Worker overhead per job with a warm instance (issue: ≤ 50 ms median beyond synthesis and upload).
#
# A warm `vox serve` on the starter models (Piper on CPU) and `vox worker` pointed at it (VOX_TTS_URL), jobs in
# SQLite; objects in the local store and, when s3s-fs is installed (.ci/run), in a real S3 server. N jobs are
# submitted one at a time (bench/worker/drive.py) and each is timed by the client from submit until the job
# reads done; the same texts also go straight to the server's /tts, the peer without a worker. The worker logs
# each job's own timings (claim → done, and the synthesis, upload and instance-wait spans inside it).
# Reports medians and p95 of: worker overhead (claim → done minus synthesis, upload and instance wait), and the
# client's submit → done minus synthesis and upload, next to the direct /tts time.
#
# usage: bench/worker/run.sh [N=40]     (needs .cache/wheels and ONNX Runtime: run .ci/run once)
set -euo pipefail
cd "$(dirname "$0")/../.."
n="${1:-40}"
root=$PWD
cargo build -q --release -p vox-cli
vox="$root/target/release/vox"
work=$(mktemp -d /tmp/vox-bench.worker.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
export MODELS_DIR="$work/models" HF_ENDPOINT=http://127.0.0.1:1 PIP_NO_INDEX=1 PIP_FIND_LINKS="$root/.cache/wheels"
export VOX_ORT_DYLIB="${VOX_ORT_DYLIB:-$root/.cache/onnxruntime/1.32.0/libonnxruntime.so.1.32.0}"
export VOX_LOG=info
key=bench-key

# Prints the address from a process's first stdout line ({"addr": ...}).
addr_of() { python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["addr"])'; }

VOX_API_KEY=$key "$vox" serve --bind 127.0.0.1:0 > "$work/serve.out" 2> "$work/serve.log" &
pids+=($!)
until [ -s "$work/serve.out" ]; do sleep 0.1; done
tts="http://$(addr_of < "$work/serve.out")"
until curl -sf "$tts/ready" > /dev/null; do sleep 0.2; done

run() { # name, extra env...
  local name=$1; shift
  mkdir -p "$work/$name"
  env "$@" VOX_DATA_DIR="$work/$name" VOX_TTS_URL="$tts" VOX_TTS_KEY=$key VOX_CONCURRENCY=1 \
    "$vox" worker --bind 127.0.0.1:0 > "$work/$name/worker.out" 2> "$work/$name/worker.log" &
  local pid=$!
  pids+=($pid)
  until [ -s "$work/$name/worker.out" ]; do sleep 0.1; done
  local w="http://$(addr_of < "$work/$name/worker.out")"
  python3 bench/worker/drive.py "$w" "$tts" $key "$n" > "$work/$name/client.jsonl"
  kill "$pid"
  python3 - "$name" "$work/$name/worker.log" "$work/$name/client.jsonl" <<'PY'
import json, statistics, sys
name, log, client = sys.argv[1:]
timings = {}
for line in open(log):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    if v.get("message") == "job timings":
        timings[v["job"]] = v
rows = [json.loads(l) for l in open(client)]
def stats(xs):
    xs = sorted(xs)
    return statistics.median(xs), xs[max(0, int(round(0.95 * len(xs))) - 1)]
ov = [timings[r["job"]]["overhead_ms"] for r in rows]
synth = [timings[r["job"]]["synth_ms"] for r in rows]
up = [timings[r["job"]]["upload_ms"] for r in rows]
e2e_extra = [r["e2e_s"] * 1e3 - timings[r["job"]]["synth_ms"] - timings[r["job"]]["upload_ms"] for r in rows]
direct = [r["direct_s"] * 1e3 for r in rows]
e2e = [r["e2e_s"] * 1e3 for r in rows]
print(f"## {name}: {len(rows)} jobs, one at a time")
for label, xs in [("worker overhead (claim→done − synth − upload − wait)", ov),
                  ("client submit→done − synth − upload", e2e_extra),
                  ("synthesis (/tts from the worker)", synth), ("upload", up),
                  ("client submit→done", e2e), ("direct /tts (no worker)", direct)]:
    m, p = stats(xs)
    print(f"{label:<54} median {m:8.2f} ms   p95 {p:8.2f} ms")
print(f"{'submit→done ÷ direct /tts (medians)':<54} {statistics.median(e2e) / statistics.median(direct):.3f}")
PY
}

out="bench/worker/results-$(date -u +%Y%m%d).txt"
exec > >(tee "$out")
echo "# worker overhead, $(date -u +%F), $(nproc) cores, starter models (Piper, CPU), SQLite"
run local
if [ -x .cache/tools/bin/s3s-fs ]; then
  s3root="$work/s3"; mkdir -p "$s3root/audio"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  .cache/tools/bin/s3s-fs --host 127.0.0.1 --port "$port" --access-key AK --secret-key SK "$s3root" 2> "$work/s3.log" &
  pids+=($!)
  sleep 1
  echo
  run s3 VOX_BUCKET=audio VOX_S3_ENDPOINT="http://127.0.0.1:$port" VOX_S3_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=AK AWS_SECRET_ACCESS_KEY=SK
fi
