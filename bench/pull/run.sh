#!/usr/bin/env bash
# Side-by-side pull benchmark: vox vs huggingface_hub's snapshot_download, same local Hub-compatible server
# (hubsim) with each connection's bandwidth capped (as CDNs cap it), alternating runs, medians and ratios.
# Then the presence check (a restart on a full volume) for the production manifest's file set.
#
#   bench/pull/run.sh [ROUNDS=3] [SIZE=1G per file, 2 files] [BANDWIDTH=25M per connection]
#
# Needs: a release build (cargo build --release -p vox-cli -p hubsim) and huggingface_hub 2.4.0 in
# .cache/py/hf2 (.ci/run installs it). Writes results to bench/pull/results-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}; SIZE=${2:-1G}; BW=${3:-25M}
cargo build --release -q -p vox-cli -p hubsim
work=$(mktemp -d /tmp/vox-bench.XXXXXX); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
out="bench/pull/results-$(date +%Y%m%d).txt"

./target/release/hubsim --bandwidth "$BW" \
  --synthetic "bench/big:model-00001-of-00002.safetensors=$SIZE" \
  --synthetic "bench/big:model-00002-of-00002.safetensors=$SIZE" \
  > "$work/hub.json" &
hub_pid=$!
for _ in $(seq 100); do [ -s "$work/hub.json" ] && break; sleep 0.1; done
endpoint=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$work/hub.json")
printf '[[models]]\nname="big"\nengine="bench"\nrepo="bench/big"\nfiles=["*"]\n' > "$work/big.toml"

run_vox() { rm -rf "$work/v"; MODELS_DIR="$work/v" HF_ENDPOINT="$endpoint" ./target/release/vox models pull -m "$work/big.toml" >/dev/null 2>&1; }
run_py() {
  rm -rf "$work/p"
  HF_ENDPOINT="$endpoint" HF_HUB_DISABLE_XET=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONPATH=.cache/py/hf2 \
    python3 -c "import huggingface_hub as h; h.snapshot_download('bench/big', cache_dir='$work/p')" >/dev/null 2>&1
}
secs() { local t0; t0=$(date +%s.%N); "$@"; python3 -c "import time,sys; print(f'{time.time()-float(sys.argv[1]):.3f}')" "$t0"; }

{
if [ "${PRESENCE_ONLY:-0}" != 1 ]; then
echo "# pull: 2 files x $SIZE, $BW/s per connection, $ROUNDS rounds (alternating), $(nproc) cores, $(date -u +%FT%TZ)"
vt=(); pt=()
for r in $(seq "$ROUNDS"); do
  v=$(secs run_vox); p=$(secs run_py); vt+=("$v"); pt+=("$p")
  echo "round $r: vox ${v}s  huggingface_hub ${p}s"
done
python3 - "${vt[*]}" "${pt[*]}" <<'PY'
import statistics, sys
v = [float(x) for x in sys.argv[1].split()]; p = [float(x) for x in sys.argv[2].split()]
print(f"median: vox {statistics.median(v):.2f}s, huggingface_hub {statistics.median(p):.2f}s, "
      f"speed-up {statistics.median([b / a for a, b in zip(v, p)]):.2f}x (median of per-round ratios)")
PY
fi

# Presence check: the production manifest's file names, pinned to the served commits, already on the volume.
kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true
./target/release/hubsim \
  $(for f in t3_cfg.safetensors s3gen.safetensors ve.safetensors tokenizer.json conds.pt; do echo --synthetic "ResembleAI/chatterbox:$f=1M"; done) \
  $(for f in model.bin config.json preprocessor_config.json tokenizer.json vocabulary.json; do echo --synthetic "Systran/faster-whisper-large-v3:$f=1M"; done) \
  > "$work/hub2.json" &
for _ in $(seq 100); do [ -s "$work/hub2.json" ] && break; sleep 0.1; done
endpoint=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["endpoint"])' "$work/hub2.json")
MODELS_DIR="$work/prod" HF_ENDPOINT="$endpoint" ./target/release/vox models pull -m production --json > "$work/first.json" 2>/dev/null
python3 - "$work/first.json" crates/vox-store/manifests/production.toml "$work/pinned.toml" <<'PY'
import json, sys
snaps = {s["model"]: s["commit"] for s in json.load(open(sys.argv[1]))["report"]["snapshots"]}
out, model = [], None
for line in open(sys.argv[2]):
    if line.startswith("name = "):
        model = line.split('"')[1]
    if line.startswith("revision = ") and model in snaps:
        line = f'revision = "{snaps[model]}"\n'
    out.append(line)
open(sys.argv[3], "w").write("".join(out))
assert len(snaps) == 2, snaps
PY
pt=()
for r in $(seq 20); do
  s=$(MODELS_DIR="$work/prod" HF_ENDPOINT=http://127.0.0.1:1 ./target/release/vox models pull -m "$work/pinned.toml" --json 2>/dev/null \
      | python3 -c 'import json,sys; d=json.load(sys.stdin); assert not d["report"]["used_network"]; print(d["seconds"])')
  w=$(secs env MODELS_DIR="$work/prod" HF_ENDPOINT=http://127.0.0.1:1 ./target/release/vox models pull -m "$work/pinned.toml" >/dev/null 2>&1)
  pt+=("$s/$w")
done
python3 - "${pt[*]}" <<'PY'
import statistics, sys
pairs = [tuple(map(float, x.split("/"))) for x in sys.argv[1].split()]
print(f"presence check, production manifest (10 files, pinned commits, no network): "
      f"median {statistics.median(p[0] for p in pairs)*1000:.2f} ms in-process, "
      f"{statistics.median(p[1] for p in pairs)*1000:.1f} ms whole process (20 runs)")
PY
} | tee "$out"
