#!/usr/bin/env bash
# Idle-stop policy simulation (vox-fleet example policy_sim): cost per 1,000 jobs and p95 latency for
# stop-after-each-job, always-on, fixed 5 min, vox's break-even and adaptive policies, and the offline optimum,
# over seeded synthetic traces. Extra arguments go to the simulator (--restart-s, --service-s, --gpu-dph,
# --storage-dph, --seed). Writes bench/fleet/results-<date>.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="bench/fleet/results-$(date -u +%Y%m%d).txt"
cargo run -q -p vox-fleet --example policy_sim -- "$@" | tee "$out"
echo "wrote $out" >&2
