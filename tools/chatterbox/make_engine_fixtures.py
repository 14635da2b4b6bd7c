#!/usr/bin/env python3
"""End-to-end fixtures for vox-chatterbox's engine: text -> 24 kHz wav through the reference's own
`ChatterboxTTS.generate` (chatterbox-tts 0.1.7), run by developers, never by CI.

The tiny snapshot is the committed T3 and S3Gen fixtures put together (so no weights are duplicated):
t3/tiny/{t3_cfg.safetensors, tokenizer.json, conds.pt, config.json} and
s3gen/{weights.safetensors, config.json}; the Rust test assembles the same directory. Every random draw
is injected from a counter-based generator both sides implement (splitmix64 -> 53-bit uniform ->
Box-Muller, cosine branch), seeded per stream:

  T3 token draws           uniforms of stream `t3`   (torch.multinomial -> inverse-CDF, as make_t3_fixtures)
  flow initial noise z     normals of stream `z`     (1, 80, frames) row-major
  HiFT harmonic phases     uniforms of stream `phase` mapped to [-pi, pi)
  HiFT sine noise          normals of stream `sine`  (1, 9, samples) row-major

The Perth watermark is skipped (vox does not apply it). Writes OUT/cases.json and OUT/expected.safetensors
(`wav.<case>` f32, `tokens.<case>` int64).

Run: .cache/py/cb/bin/python tools/chatterbox/make_engine_fixtures.py [--out DIR]
"""

import argparse
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

import make_s3gen_fixtures as s3fx  # noqa: E402
import make_t3_fixtures as t3fx  # noqa: E402
from chatterbox import tts as cb_tts  # noqa: E402
import chatterbox.models.s3gen.hifigan as hifigan_mod  # noqa: E402
from chatterbox.models.tokenizers import EnTokenizer  # noqa: E402

MASK = (1 << 64) - 1

CASES = [
    dict(name="defaults", text="Hello world, this is a small test of the speech model.",
         params=dict(repetition_penalty=1.2, min_p=0.05, top_p=1.0, exaggeration=0.5, cfg_weight=0.5,
                     temperature=0.8), seed=11, max_new_tokens=200),
    dict(name="expressive", text="the quick brown fox… jumps: over — the lazy dog",
         params=dict(repetition_penalty=1.5, min_p=0.1, top_p=0.8, exaggeration=0.9, cfg_weight=0.3,
                     temperature=1.0), seed=22, max_new_tokens=200),
]


def splitmix_uniforms(seed: int, n: int) -> np.ndarray:
    """u_i = (splitmix64(seed + (i+1)·γ) >> 11) · 2^-53, i = 0..n-1, in f64."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        z = np.uint64(seed & MASK) + i * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def splitmix_normals(seed: int, n: int) -> np.ndarray:
    """n_k = sqrt(-2 ln(1 - u_2k)) · cos(2π u_2k+1), as f32."""
    u = splitmix_uniforms(seed, 2 * n)
    return (np.sqrt(-2.0 * np.log(1.0 - u[0::2])) * np.cos(2.0 * np.pi * u[1::2])).astype(np.float32)


def stream_seeds(seed: int) -> dict:
    return dict(t3=seed, z=seed + 1, phase=seed + 2, sine=seed + 3)


class Injected:
    """Replaces torch.multinomial, torch.randn_like and Uniform.sample for one generate() call."""

    def __init__(self, seeds: dict, vocab: int):
        self.seeds, self.t3_step, self.randn_calls = seeds, 0, []
        self.uniforms = splitmix_uniforms(seeds["t3"], 4096)

    def multinomial(self, probs, num_samples):
        assert num_samples == 1 and probs.shape[0] == 1
        u = float(self.uniforms[self.t3_step])
        self.t3_step += 1
        cdf = torch.cumsum(probs[0].double(), 0)
        idx = int(torch.searchsorted(cdf, torch.tensor([u * cdf[-1].item()], dtype=torch.float64),
                                     right=True)[0])
        return torch.tensor([[min(idx, probs.shape[-1] - 1)]], dtype=torch.long)

    def randn_like(self, t, *a, **k):
        # Call order in S3Gen: flow z, SineGen noise, then SourceModuleHnNSF's noise (discarded).
        n = len(self.randn_calls)
        self.randn_calls.append(tuple(t.shape))
        if n >= 2:
            return torch.zeros_like(t)
        seed = self.seeds["z" if n == 0 else "sine"]
        return torch.from_numpy(splitmix_normals(seed, t.numel())).reshape(t.shape).to(t.dtype)

    def sample(self, _dist, sample_shape=torch.Size()):
        n = int(np.prod(sample_shape))
        u = splitmix_uniforms(self.seeds["phase"], n).astype(np.float32)
        return torch.from_numpy(u * np.float32(2 * math.pi) - np.float32(math.pi)).reshape(sample_shape)

    def __enter__(self):
        self.saved = (torch.multinomial, torch.randn_like, hifigan_mod.Uniform.sample)
        torch.multinomial, torch.randn_like = self.multinomial, self.randn_like
        inj = self
        hifigan_mod.Uniform.sample = lambda d, sample_shape=torch.Size(): inj.sample(d, sample_shape)
        return self

    def __exit__(self, *exc):
        torch.multinomial, torch.randn_like, hifigan_mod.Uniform.sample = self.saved


def build(t3_dir: Path, s3_dir: Path):
    cfg = json.loads((t3_dir / "config.json").read_text())
    ll = cfg["llama"]
    args = SimpleNamespace(full=False, hidden=ll["hidden_size"], layers=ll["num_hidden_layers"],
                           heads=ll["num_attention_heads"], head_dim=ll["head_dim"],
                           intermediate=ll["intermediate_size"], max_text_tokens=cfg["max_text_tokens"],
                           max_speech_tokens=cfg["max_speech_tokens"])
    t3 = t3fx.build_t3(args)
    t3.load_state_dict({k: v.float() for k, v in load_file(str(t3_dir / "t3_cfg.safetensors")).items()})
    s3 = s3fx.build_tiny()
    missing, unexpected = s3.load_state_dict(
        {k: v.float() for k, v in load_file(str(s3_dir / "weights.safetensors")).items()}, strict=False)
    assert not unexpected and all(not (m.startswith("flow.") or m.startswith("mel2wav.")) for m in missing)
    tok = EnTokenizer(str(t3_dir / "tokenizer.json"))
    conds = cb_tts.Conditionals.load(t3_dir / "conds.pt")
    tts = cb_tts.ChatterboxTTS(t3.eval(), s3.eval(), None, tok, "cpu", conds=conds)
    tts.watermarker = SimpleNamespace(apply_watermark=lambda wav, sample_rate: wav)
    return tts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--t3", type=Path, default=common.FIXTURES / "t3" / "tiny")
    ap.add_argument("--s3gen", type=Path, default=common.FIXTURES / "s3gen")
    ap.add_argument("--out", type=Path, default=common.FIXTURES / "engine")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tts = build(args.t3, args.s3gen)
    real_inference = tts.t3.inference
    out, metas = {}, []
    for case in CASES:
        # generate() hard-codes max_new_tokens=1000; the tiny model's position tables are shorter, and the
        # Rust test passes the same cap.
        tts.t3.inference = lambda *a, cap=case["max_new_tokens"], **k: real_inference(*a, **{**k, "max_new_tokens": cap})
        seeds = stream_seeds(case["seed"])
        with Injected(seeds, 8194) as inj:
            wav = tts.generate(case["text"], **case["params"])
        assert inj.t3_step < case["max_new_tokens"], "pick a case that stops on EOS"
        tts.t3.inference = real_inference
        wav = torch.as_tensor(wav).reshape(-1).float()
        out[f"wav.{case['name']}"] = wav
        metas.append(dict(case, seeds=seeds, t3_draws=inj.t3_step, samples=int(wav.numel()),
                          randn_shapes=inj.randn_calls))
        print(f"{case['name']}: {inj.t3_step} T3 draws, {wav.numel()} samples, rms {float(wav.pow(2).mean().sqrt()):.4f}")
    common.save_tensors(out, args.out / "expected.safetensors")
    common.write_json(metas, args.out / "cases.json")


if __name__ == "__main__":
    main()
