#!/usr/bin/env python3
"""Golden fixtures for vox-chatterbox's S3Gen port, made with the reference (chatterbox-tts 0.1.7).

Builds `S3Token2Wav` with a shrunken configuration (same code paths; sizes replaced in the
reference's module namespaces, no package file edited), randomises every parameter from a seed,
rounds the weights to fp16 (so the fp16 file is exact for an fp32 compute), feeds fixed noise to
every random draw, and writes to OUT:

  config.json          the tiny S3GenConfig (vox-chatterbox's serde layout)
  weights.safetensors  flow.* and mel2wav.* in the checkpoint's names (weight-norm pairs kept), fp16
  io.safetensors       inputs, injected noise and per-stage outputs, fp32 / int64
  conds.pt             a built-in-voice file written by the reference's `Conditionals.save`

With --manifest PATH it also writes the names, shapes and dtypes of the full-size `S3Gen()` state
dict (what `s3gen.safetensors` holds) as JSON.

Run: .cache/py/cb/bin/python tools/chatterbox/make_s3gen_fixtures.py [--seed N] [--out DIR]
"""

import argparse
import json
import math
import os

import numpy as np
import torch
from safetensors.torch import save_file

import chatterbox.models.s3gen.s3gen as s3gen_mod
import chatterbox.models.s3gen.hifigan as hifigan_mod
import chatterbox.models.s3gen.transformer.upsample_encoder as ue_mod
from chatterbox.models.s3gen.s3gen import S3Token2Wav
from chatterbox.models.s3gen.flow import CausalMaskedDiffWithXvec
from chatterbox.models.s3gen.decoder import ConditionalDecoder
from chatterbox.models.s3gen.hifigan import HiFTGenerator
from chatterbox.models.s3gen.f0_predictor import ConvRNNF0Predictor
from chatterbox.models.t3.modules.cond_enc import T3Cond
from chatterbox.tts import Conditionals

TINY = {
    "vocab_size": 6561,
    "input_size": 64,
    "output_size": 80,
    "spk_embed_dim": 192,
    "encoder": {"output_size": 64, "attention_heads": 2, "linear_units": 128, "num_blocks": 2,
                "num_up_blocks": 2, "pre_lookahead_len": 3, "upsample_stride": 2},
    "decoder": {"in_channels": 320, "out_channels": 80, "channels": [32], "attention_head_dim": 16,
                "n_blocks": 2, "num_mid_blocks": 2, "num_heads": 2},
    "cfm": {"n_timesteps": 10, "inference_cfg_rate": 0.7},
    "hift": {"base_channels": 32, "f0_cond_channels": 32},
}


class _Stub(torch.nn.Module):
    """Stands in for S3Tokenizer / CAMPPlus, which the token→wav path never calls."""

    def __init__(self, *a, **k):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))


def build_tiny():
    cfg = TINY
    enc, dec = cfg["encoder"], cfg["decoder"]
    w = enc["output_size"]
    orig_pre, orig_up, orig_enc = ue_mod.PreLookaheadLayer, ue_mod.Upsample1D, s3gen_mod.UpsampleConformerEncoder
    ue_mod.PreLookaheadLayer = lambda channels, pre_lookahead_len: orig_pre(w, pre_lookahead_len)
    ue_mod.Upsample1D = lambda channels, out_channels, stride: orig_up(w, w, stride)

    def make_encoder(**kw):
        kw.update(output_size=w, attention_heads=enc["attention_heads"], linear_units=enc["linear_units"],
                  num_blocks=enc["num_blocks"], input_size=cfg["input_size"])
        e = orig_enc(**kw)
        e.up_encoders = e.up_encoders[: enc["num_up_blocks"]]
        return e

    def make_decoder(**kw):
        kw.update(channels=dec["channels"], attention_head_dim=dec["attention_head_dim"], n_blocks=dec["n_blocks"],
                  num_mid_blocks=dec["num_mid_blocks"], num_heads=dec["num_heads"])
        return ConditionalDecoder(**kw)

    saved = {k: getattr(s3gen_mod, k) for k in ("UpsampleConformerEncoder", "ConditionalDecoder", "HiFTGenerator",
                                                 "ConvRNNF0Predictor", "CausalMaskedDiffWithXvec", "S3Tokenizer",
                                                 "CAMPPlus")}
    s3gen_mod.UpsampleConformerEncoder = make_encoder
    s3gen_mod.ConditionalDecoder = make_decoder
    s3gen_mod.HiFTGenerator = lambda **kw: HiFTGenerator(base_channels=cfg["hift"]["base_channels"], **kw)
    s3gen_mod.ConvRNNF0Predictor = lambda: ConvRNNF0Predictor(cond_channels=cfg["hift"]["f0_cond_channels"])
    s3gen_mod.CausalMaskedDiffWithXvec = lambda **kw: CausalMaskedDiffWithXvec(input_size=cfg["input_size"], **kw)
    s3gen_mod.S3Tokenizer = _Stub
    s3gen_mod.CAMPPlus = _Stub
    try:
        model = S3Token2Wav()
    finally:
        for k, v in saved.items():
            setattr(s3gen_mod, k, v)
        ue_mod.PreLookaheadLayer, ue_mod.Upsample1D = orig_pre, orig_up
    return model.eval()


def randomise(model, gen):
    """Every parameter gets random, well-scaled values; weights end up fp16-exact."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not (name.startswith("flow.") or name.startswith("mel2wav.")):
                continue
            leaf = name.rsplit(".", 1)[-1]
            shape = p.shape
            rnd = lambda: torch.randn(shape, generator=gen)
            if leaf == "alpha":  # Snake: 1/alpha must stay tame
                p.copy_(0.5 + torch.rand(shape, generator=gen))
            elif leaf == "original0":  # weight-norm g
                p.mul_(1.0 + 0.2 * rnd())
            elif leaf == "bias":
                p.copy_(0.05 * rnd())
            elif p.ndim == 1 or leaf in ("pos_bias_u", "pos_bias_v"):
                is_norm_weight = leaf == "weight"
                p.copy_((1.0 if is_norm_weight else 0.0) + 0.1 * rnd())
            elif "input_embedding" in name:
                p.copy_(rnd())
            else:
                fan_in = int(np.prod(shape[1:])) if "ups." not in name else shape[0]
                scale = 1.0 / math.sqrt(max(fan_in, 1))
                if "mel2wav" in name and leaf == "original1":
                    p.copy_(rnd())  # direction only; g sets the scale
                elif "conv_post" in name:
                    p.copy_(0.3 * scale * rnd())
                else:
                    p.copy_(scale * rnd())
            p.copy_(p.half().float())
        # Make F0 land around speech pitches so both voiced (> 10 Hz) and unvoiced frames occur.
        clf = model.mel2wav.f0_predictor.classifier
        clf.weight.copy_((60.0 / math.sqrt(clf.weight.shape[1]) * torch.randn(clf.weight.shape, generator=gen)).half().float())
        clf.bias.fill_(12.0)


class Draws:
    """Replaces torch.randn_like / Uniform.sample with fixed tensors, in call order."""

    def __init__(self, z, phase=None, sine_noise=None):
        self.queue = [("z", z)] + ([("sine_noise", sine_noise), ("hnnsf_noise", None)] if phase is not None else [])
        self.phase = phase

    def __enter__(self):
        self._randn_like, self._sample = torch.randn_like, hifigan_mod.Uniform.sample
        draws = self

        def randn_like(t, *a, **k):
            name, val = draws.queue.pop(0)
            if val is None:
                return torch.zeros_like(t)
            assert tuple(val.shape) == tuple(t.shape), (name, val.shape, t.shape)
            return val.clone().to(t.dtype)

        def sample(self_, sample_shape=torch.Size()):
            assert tuple(sample_shape) == tuple(draws.phase.shape), (sample_shape, draws.phase.shape)
            return draws.phase.clone()

        torch.randn_like = randn_like
        hifigan_mod.Uniform.sample = sample
        return self

    def __exit__(self, *exc):
        torch.randn_like, hifigan_mod.Uniform.sample = self._randn_like, self._sample
        assert not [q for q in self.queue if q[1] is not None], f"undrawn: {self.queue}"


MANIFEST_HEAD = '{"source": "chatterbox-tts 0.1.7 S3Token2Wav() state_dict (= s3gen.safetensors names)",\n"tensors": {\n'


def write_manifest(path):
    torch.manual_seed(0)
    model = S3Token2Wav()
    entries = {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
               for k, v in model.state_dict().items()}
    with open(path, "w") as f:
        f.write(MANIFEST_HEAD)
        f.write(",\n".join(f'{json.dumps(k)}: {json.dumps(entries[k])}' for k in sorted(entries)))
        f.write("\n}}\n")
    print(f"manifest: {len(entries)} tensors -> {path}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", default="crates/vox-chatterbox/tests/fixtures/s3gen")
    ap.add_argument("--prompt-tokens", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=12)
    ap.add_argument("--manifest", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.manifest:
        write_manifest(args.manifest)

    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(args.seed)
    model = build_tiny()
    randomise(model, gen)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()
          if k.startswith("flow.") or k.startswith("mel2wav.")}
    save_file({k: v.half() for k, v in sd.items()}, os.path.join(args.out, "weights.safetensors"))
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(TINY, f, indent=1)

    P, N = args.prompt_tokens, args.tokens
    T = 2 * (P + N)
    spf = 480
    L = 2 * N * spf
    prompt_token = torch.randint(0, 6561, (1, P), generator=gen)
    tokens = torch.randint(0, 6561, (1, N), generator=gen)
    prompt_feat = (-5.0 + 2.0 * torch.randn(1, 2 * P, 80, generator=gen))
    embedding = torch.randn(1, 192, generator=gen)
    z = torch.randn(1, 80, T, generator=gen)
    phase = (torch.rand(1, 9, 1, generator=gen) * 2 - 1) * math.pi
    sine_noise = torch.randn(1, 9, L, generator=gen)
    ref_dict = dict(prompt_token=prompt_token, prompt_token_len=torch.tensor([P]), prompt_feat=prompt_feat,
                    prompt_feat_len=None, embedding=embedding)
    flow, hift = model.flow, model.mel2wav
    out = {}

    with torch.inference_mode():
        # Stage 1: tokens -> encoder -> mu.
        all_tok = torch.cat([prompt_token, tokens], dim=1)
        emb = flow.input_embedding(all_tok)
        h, _ = flow.encoder(emb, torch.tensor([P + N]))
        out["enc.h"] = h
        mu = flow.encoder_proj(h).transpose(1, 2).contiguous()
        out["enc.mu"] = mu
        spks = flow.spk_embed_affine_layer(torch.nn.functional.normalize(embedding, dim=1))
        out["flow.spks"] = spks
        cond = torch.zeros(1, 80, T)
        cond[:, :, : 2 * P] = prompt_feat.transpose(1, 2)
        mask = torch.ones(1, 1, T)

        # Stage 2: one estimator call on the CFG batch, and one Euler step.
        cfm = flow.decoder
        t_span = 1 - torch.cos(torch.linspace(0, 1, 11) * 0.5 * torch.pi)
        x_in = torch.cat([z, z]); mu_in = torch.cat([mu, torch.zeros_like(mu)])
        spks_in = torch.cat([spks, torch.zeros_like(spks)]); cond_in = torch.cat([cond, torch.zeros_like(cond)])
        t_in = torch.full((2,), float(t_span[3]))
        out["est.t"] = t_in
        out["est.out"] = cfm.estimator(x_in, torch.ones(2, 1, T), mu_in, t_in, spks_in, cond_in)
        out["step.x1"] = cfm.solve_euler(z, t_span=t_span[:2], mu=mu, mask=mask, spks=spks, cond=cond)

        # Stage 3: whole flow, then HiFT, through the reference's own S3Token2Wav.inference.
        with Draws(z, phase, sine_noise):
            wav, source = model.inference(tokens, ref_dict=dict(ref_dict))
        out["wav"] = wav
        out["hift.source"] = source
        with Draws(z):
            mel = model.flow_inference(tokens, ref_dict=dict(ref_dict), finalize=True)
        out["flow.mel"] = mel
        out["hift.f0"] = hift.f0_predictor(mel)
        out["hift.decode"] = hift.decode(x=mel, s=source)

    io = {"prompt_token": prompt_token, "tokens": tokens, "prompt_feat": prompt_feat, "embedding": embedding,
          "noise.z": z, "noise.phase": phase.reshape(9), "noise.sine": sine_noise}
    io.update(out)
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(args.out, "io.safetensors"))

    t3 = T3Cond(speaker_emb=torch.randn(1, 256, generator=gen), cond_prompt_speech_tokens=prompt_token.clone(),
                emotion_adv=0.5 * torch.ones(1, 1, 1))
    Conditionals(t3, ref_dict).save(os.path.join(args.out, "conds.pt"))
    print("wav", tuple(wav.shape), "rms", float(wav.pow(2).mean().sqrt()), "mel range",
          float(mel.min()), float(mel.max()), "f0 mean", float(out["hift.f0"].mean()))


if __name__ == "__main__":
    main()
