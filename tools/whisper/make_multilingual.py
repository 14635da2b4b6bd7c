"""A tiny multilingual Whisper with random weights, and faster-whisper's outputs on it, for vox-whisper's
multilingual tests (crates/vox-whisper/tests/multilingual.rs).

Run by developers only, never by CI, when faster-whisper, the fixture's shape or its seed changes. From the
repository root, with faster-whisper 1.2.1 (+ ctranslate2 4.8.5, tokenizers) in .cache/py/fw (see
make_golden.py) and the openai-whisper sdist (tools/test-wheels.txt) in .cache/wheels:

    PYTHONPATH=.cache/py/fw python3 tools/whisper/make_multilingual.py

Writes crates/vox-whisper/tests/multilingual/:
  - tokenizer.json.gz: a `tokenizers` byte-level BPE made from openai-whisper's assets/multilingual.tiktoken
    (the vocabulary of every multilingual Whisper but large-v3): the 50257 ranks as the vocabulary, merges
    recovered from the ranks, then Whisper's special tokens in openai-whisper's order (<|endoftext|> 50257,
    <|startoftranscript|> 50258, 99 languages, task and control tokens, <|notimestamps|> 50363, then the 1501
    timestamps, 51865 tokens in all);
  - model/: a CTranslate2 Whisper (`ctranslate2.specs.WhisperSpec`, saved by CTranslate2 itself, float16) with
    d_model 8, 2 heads, 1 encoder and 2 decoder layers, the 51865-token vocabulary and weights drawn from
    numpy's default_rng(SEED); config.json with lang_ids and alignment_heads like the converter writes;
  - expected.json: for each input (a seeded noise clip and a synthetic chirp with pauses, both made here and stored as 16-bit PCM in the JSON so Rust reads the same samples), faster-whisper's
    `detect_language` probabilities (all 99, sorted), and greedy (beam_size=1, temperature=0) `transcribe`
    token ids with task="transcribe" and task="translate" (language forced to the detected one and to "de").

The tokenizer is the real multilingual vocabulary, so language detection, the language/task tokens and the
non-speech suppression list are exercised as with a real multilingual checkpoint; only the weights are fake.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import wave
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "crates/vox-whisper/tests/multilingual"
SDIST = REPO / ".cache/wheels/openai_whisper-20250625.tar.gz"
SEED = 20250625
D_MODEL = 8
HEADS = 2
FFN = 16
ENC_LAYERS = 1
DEC_LAYERS = 2
N_MELS = 80
SAMPLE_RATE = 16000

LANGUAGES = [
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it",
    "id", "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur",
    "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn",
    "et", "mk", "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si",
    "km", "sn", "yo", "so", "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln",
    "ha", "ba", "jw", "su",
]
PAT = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-ins for bytes (what byte-level BPE vocabularies are written in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def bpe_parts(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """Runs BPE on `token` with merges below `max_rank` only: what is left are the two parts it merges from."""
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best[1]):
                best = (i, r)
        if best is None:
            return parts
        i = best[0]
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2 :]


def special_tokens() -> list[str]:
    return (
        ["<|endoftext|>", "<|startoftranscript|>"]
        + [f"<|{lang}|>" for lang in LANGUAGES]
        + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
        + [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    )


def make_tokenizer(sdist: Path) -> str:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

    with tarfile.open(sdist) as t:
        member = next(m for m in t.getmembers() if m.name.endswith("whisper/assets/multilingual.tiktoken"))
        text = t.extractfile(member).read().decode()
    ranks = {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in text.splitlines() if line)}
    b2u = bytes_to_unicode()
    enc = lambda b: "".join(b2u[x] for x in b)  # noqa: E731
    # Rank 50256 is the empty string, as in the transformers vocabularies (CTranslate2 takes an entry "" as the
    # sign of a multilingual vocabulary).
    vocab = {enc(tok): rank for tok, rank in ranks.items()}
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) <= 1:
            continue
        parts = bpe_parts(ranks, tok, rank)
        assert len(parts) == 2, (tok, parts)
        merges.append((enc(parts[0]), enc(parts[1])))
    tk = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PAT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in special_tokens()])
    assert tk.get_vocab_size() == 51865, tk.get_vocab_size()
    assert tk.token_to_id("<|startoftranscript|>") == 50258 and tk.token_to_id("<|notimestamps|>") == 50363
    return tk.to_str()


def make_model(out: Path) -> None:
    from ctranslate2.specs import whisper_spec

    rng = np.random.default_rng(SEED)
    vocab = 51865

    def r(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ln(spec):
        spec.gamma = (1.0 + r(D_MODEL, scale=0.1)).astype(np.float32)
        spec.beta = r(D_MODEL, scale=0.1)

    def linear(spec, n_out, n_in, scale=None):
        spec.weight = r(n_out, n_in, scale=scale or 1.0 / np.sqrt(n_in))
        spec.bias = r(n_out, scale=0.1)

    def ffn(spec):
        ln(spec.layer_norm)
        linear(spec.linear_0, FFN, D_MODEL)
        linear(spec.linear_1, D_MODEL, FFN)

    spec = whisper_spec.WhisperSpec(ENC_LAYERS, HEADS, DEC_LAYERS, HEADS)
    e = spec.encoder
    e.conv1.weight = r(D_MODEL, N_MELS, 3, scale=0.1)
    e.conv1.bias = r(D_MODEL, scale=0.1)
    e.conv2.weight = r(D_MODEL, D_MODEL, 3, scale=0.3)
    e.conv2.bias = r(D_MODEL, scale=0.1)
    e.position_encodings.encodings = r(1500, D_MODEL, scale=0.3)
    ln(e.layer_norm)
    for layer in e.layer:
        ln(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * D_MODEL, D_MODEL)
        linear(layer.self_attention.linear[1], D_MODEL, D_MODEL)
        ffn(layer.ffn)
    d = spec.decoder
    emb = r(vocab, D_MODEL, scale=1.0)
    d.embeddings.weight = emb
    d.position_encodings.encodings = r(448, D_MODEL, scale=0.3)
    ln(d.layer_norm)
    for layer in d.layer:
        ln(layer.self_attention.layer_norm)
        linear(layer.self_attention.linear[0], 3 * D_MODEL, D_MODEL)
        linear(layer.self_attention.linear[1], D_MODEL, D_MODEL)
        ln(layer.attention.layer_norm)
        linear(layer.attention.linear[0], D_MODEL, D_MODEL)
        linear(layer.attention.linear[1], 2 * D_MODEL, D_MODEL)
        linear(layer.attention.linear[2], D_MODEL, D_MODEL)
        ffn(layer.ffn)
    # The output projection is the embedding matrix (saved once, as an alias).
    d.projection.weight = emb
    lang_ids = list(range(50259, 50259 + len(LANGUAGES)))
    spec.config.lang_ids = lang_ids
    spec.config.suppress_ids = []
    spec.config.suppress_ids_begin = [220, 50257]
    spec.config.alignment_heads = [[1, 0], [1, 1]]
    spec.register_vocabulary([str(i) for i in range(vocab)])
    spec.validate()
    spec.optimize(quantization="float16")
    spec.save(str(out))
    # Rust reads tokenizer.json only; the vocabulary file is recreated for CTranslate2 in main().
    for name in ("vocabulary.json", "vocabulary.txt"):
        (out / name).unlink(missing_ok=True)


def clips() -> dict[str, np.ndarray]:
    """Two short inputs as int16 samples: seeded noise (3.2 s) and a rising chirp with pauses (4.0 s)."""
    rng = np.random.default_rng(SEED + 1)
    noise = (rng.standard_normal(int(3.2 * SAMPLE_RATE)) * 3000).astype(np.int16)
    t = np.arange(int(4.0 * SAMPLE_RATE)) / SAMPLE_RATE
    chirp = 0.4 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (np.sin(2 * np.pi * 0.75 * t) > -0.3)
    return {"noise": noise, "chirp": (chirp * 32767).astype(np.int16)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sdist", type=Path, default=SDIST)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    import ctranslate2
    import faster_whisper
    from faster_whisper import WhisperModel

    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    (out / "model").mkdir(parents=True)
    tok_json = make_tokenizer(args.sdist)
    with gzip.GzipFile(out / "tokenizer.json.gz", "wb", mtime=0) as f:
        f.write(tok_json.encode())
    make_model(out / "model")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        shutil.copytree(out / "model", model_dir)
        (model_dir / "tokenizer.json").write_text(tok_json)
        # CTranslate2 reads the special tokens' ids (and whether <|en|> exists) from the vocabulary file.
        from tokenizers import Tokenizer

        tk = Tokenizer.from_str(tok_json)
        vocabulary = [tk.id_to_token(i) for i in range(tk.get_vocab_size())]
        (model_dir / "vocabulary.json").write_text(json.dumps(vocabulary))
        model = WhisperModel(str(model_dir), device="cpu", compute_type="float32", cpu_threads=2)
        assert model.model.is_multilingual
        results = {}
        for name, pcm in clips().items():
            audio = pcm.astype(np.float32) / 32768.0
            lang, prob, all_probs = model.detect_language(audio)
            entry = {
                "samples_i16": pcm.tolist(),
                "language": lang,
                "language_probability": prob,
                "language_probs": [[l, p] for l, p in all_probs],
            }
            greedy = dict(beam_size=1, temperature=0.0, vad_filter=False, condition_on_previous_text=True)
            for key, opts in {
                "transcribe": dict(task="transcribe"),
                "translate": dict(task="translate"),
                "transcribe_de": dict(task="transcribe", language="de"),
            }.items():
                segs, info = model.transcribe(audio, **greedy, **opts)
                segs = list(segs)
                entry[key] = {
                    "language": info.language,
                    "language_probability": info.language_probability,
                    "segments": [
                        {"start": s.start, "end": s.end, "tokens": list(s.tokens), "text": s.text} for s in segs
                    ],
                }
            results[name] = entry
    expected = {
        "about": "faster-whisper outputs on the random-weight multilingual fixture; made by tools/whisper/make_multilingual.py",
        "versions": {"faster_whisper": faster_whisper.__version__, "ctranslate2": ctranslate2.__version__},
        "seed": SEED,
        "clips": results,
    }
    (out / "expected.json").write_text(json.dumps(expected, separators=(",", ":")) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
