"""Generate the T3 parity fixtures for crates/vox-chatterbox (run by developers, never by CI).

    .cache/py/cb/bin/python tools/chatterbox/make_t3_fixtures.py [--out DIR] [--seed N] [--hidden 64 ...]

Builds the reference T3 (chatterbox-tts 0.1.7) at a tiny config through the reference's own code
paths (only the Llama config name and the Perceiver width are swapped in, no package file is
edited), gives it seeded random weights rounded to fp16, and runs the reference's `generate` T3
path (punc_norm -> EnTokenizer -> CFG batch of two -> `T3.inference`) for several texts and
sampling parameter sets. `torch.multinomial` is replaced by an inverse-CDF draw on fed uniforms so
the Rust sampler can be driven by the same numbers. Outputs, in one self-contained directory that
the Rust tests accept through `VOX_T3_FIXTURES`:

  config.json            the tiny config (schema of `vox_chatterbox::t3::T3Config`)
  t3_cfg.safetensors     the weights (fp16; exact for an fp32 computation)
  tokenizer.json         the text tokenizer (see make_tokenizer)
  conds.pt               a built-in voice saved with the reference's `Conditionals.save`
  texts.json             punc_norm and token ids for a set of edge-case strings
  cases.json             per case: text, parameters, output tokens, what was dumped
  case_<name>.safetensors  inputs, conditioning, prefix, per-layer hidden states, logits, probs

With --manifest it also writes the names/shapes/dtypes of the full-size default checkpoint.
"""

import argparse
import functools
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from chatterbox import tts as cb_tts  # noqa: E402
from chatterbox.models.t3 import t3 as t3_mod  # noqa: E402
from chatterbox.models.t3 import llama_configs  # noqa: E402
from chatterbox.models.t3.modules import cond_enc  # noqa: E402
from chatterbox.models.t3.modules.cond_enc import T3Cond  # noqa: E402
from chatterbox.models.t3.modules.t3_config import T3Config  # noqa: E402
from chatterbox.models.tokenizers import EnTokenizer  # noqa: E402

from make_tokenizer import build_tokenizer  # noqa: E402

DUMP_HIDDEN_STEPS = 3  # prefill + the first two cached steps
DUMP_LOGIT_STEPS = 5

TEXTS = [
    "", "   ", "hello world", "Wait... what?", "one: two; three", "a - b", "em—dash and en–dash",
    "“quoted” and ‘single’", "trailing space   ", "ßtart", "ends with a comma,", "x ,y", "done -",
    "tab\tand\nnewline", "ellipsis… here", "Numbers 1, 2 and 3!", "ünïcödé façade", "über café",
    "MIXED case, CAPS?", "\u00a0nbsp\u00a0inside", "under_score & ampersand", "tabs\t\t and \x1f unit sep",
]

CASES = [
    # name, text, params, max_new_tokens, conds source
    dict(name="defaults", text="Hello world, this is a small test of the speech model.",
         params=dict(repetition_penalty=1.2, min_p=0.05, top_p=1.0, exaggeration=0.5,
                     cfg_weight=0.5, temperature=0.8), max_new_tokens=40, conds="conds.pt"),
    dict(name="expressive", text="the quick brown fox… jumps: over — the lazy dog",
         params=dict(repetition_penalty=1.5, min_p=0.1, top_p=0.8, exaggeration=0.9,
                     cfg_weight=0.3, temperature=1.0), max_new_tokens=40, conds="random"),
    dict(name="short_cold", text="Hi",
         params=dict(repetition_penalty=1.0, min_p=0.0, top_p=0.95, exaggeration=0.25,
                     cfg_weight=1.0, temperature=0.5), max_new_tokens=40, conds="random"),
]


def tiny_llama(hidden, layers, heads, head_dim, intermediate):
    cfg = dict(llama_configs.LLAMA_520M_CONFIG_DICT)
    cfg.update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
               num_key_value_heads=heads, head_dim=head_dim, intermediate_size=intermediate)
    return cfg


def build_t3(args) -> "t3_mod.T3":
    hp = T3Config.english_only()
    if not args.full:
        llama_configs.LLAMA_CONFIGS["Llama_tiny"] = tiny_llama(
            args.hidden, args.layers, args.heads, args.head_dim, args.intermediate)
        hp.llama_config_name = "Llama_tiny"
        hp.max_text_tokens = args.max_text_tokens
        hp.max_speech_tokens = args.max_speech_tokens
        # The Perceiver's width is a hard-coded default of 1024; the reference calls it with no
        # arguments, so wrap the name it looks up.
        cond_enc.Perceiver = functools.partial(
            _PERCEIVER, pre_attention_query_size=args.hidden, embedding_dim=args.hidden)
    return t3_mod.T3(hp).eval()


_PERCEIVER = cond_enc.Perceiver


def init_weights(t3, eos_scale: float) -> None:
    """Weights with unit-scale activations so the logits are spread (min-p and top-p then cut
    real tokens), and a louder stop-token row so some cases stop on EOS."""
    with torch.no_grad():
        for name, p in t3.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name or ".norm." in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p)) if name.endswith("weight") else \
                    p.copy_(0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "emb" in name or "pre_attention_query" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:  # Linear (out, in)
                p.copy_(torch.randn_like(p) / np.sqrt(p.shape[-1]))
        t3.speech_head.weight[t3.hp.stop_speech_token] *= eos_scale
    common.round_params_to_f16(t3)


def config_json(t3) -> dict:
    hp = t3.hp
    lc = llama_configs.LLAMA_CONFIGS[hp.llama_config_name]
    perc = t3.cond_enc.perceiver
    return {
        "start_text_token": hp.start_text_token, "stop_text_token": hp.stop_text_token,
        "text_tokens_dict_size": hp.text_tokens_dict_size, "max_text_tokens": hp.max_text_tokens,
        "start_speech_token": hp.start_speech_token, "stop_speech_token": hp.stop_speech_token,
        "speech_tokens_dict_size": hp.speech_tokens_dict_size,
        "max_speech_tokens": hp.max_speech_tokens,
        "speech_cond_prompt_len": hp.speech_cond_prompt_len,
        "speaker_embed_size": hp.speaker_embed_size,
        "llama": {k: lc[k] for k in (
            "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "rope_theta",
            "rope_scaling")},
        "perceiver": {
            "query_tokens": perc.pre_attention_query.shape[1],
            "query_size": perc.pre_attention_query.shape[2],
            "embedding_dim": perc.attn.channels,
            "num_heads": perc.attn.num_heads,
        },
    }


class Recorder:
    """Forward hooks that record what the Rust side must reproduce, per backbone call."""

    def __init__(self, t3):
        self.t3 = t3
        self.call = -1
        self.out = {}
        self.handles = []
        self.handles.append(t3.tfmr.register_forward_pre_hook(self._pre, with_kwargs=True))
        for i, layer in enumerate(t3.tfmr.layers):
            self.handles.append(layer.register_forward_hook(functools.partial(self._layer, i)))
        self.handles.append(t3.tfmr.norm.register_forward_hook(self._norm))
        self.handles.append(t3.speech_head.register_forward_hook(self._head))
        self.handles.append(t3.cond_enc.register_forward_hook(self._cond))
        self.handles.append(t3.cond_enc.perceiver.register_forward_hook(self._perc))

    def close(self):
        for h in self.handles:
            h.remove()

    def _pre(self, _m, _args, kwargs):
        self.call += 1
        if self.call == 0:
            self.out["prefix"] = kwargs["inputs_embeds"].clone()

    def _layer(self, i, _m, _inp, output):
        if self.call < DUMP_HIDDEN_STEPS:
            h = output[0] if isinstance(output, tuple) else output
            self.out[f"hidden.step{self.call}.layer{i}"] = h.clone()

    def _norm(self, _m, _inp, output):
        if self.call < DUMP_HIDDEN_STEPS:
            self.out[f"hidden.step{self.call}.norm"] = output.clone()

    def _head(self, _m, _inp, output):
        if self.call < DUMP_LOGIT_STEPS:
            self.out[f"logits.step{self.call}"] = output[:, -1, :].clone()

    def _cond(self, _m, inp, output):
        self.out["cond_emb"] = output.clone()
        self.out["cond_prompt_speech_emb"] = inp[0].cond_prompt_speech_emb.clone()

    def _perc(self, _m, _inp, output):
        self.out["perceiver_out"] = output.clone()


def run_case(t3, tokenizer, case, conds_t3: T3Cond, seed: int):
    """The T3 half of `ChatterboxTTS.generate`, verbatim in order, with recorded activations."""
    p = case["params"]
    uniforms = np.random.RandomState(seed).random_sample(case["max_new_tokens"])
    it = iter(uniforms.tolist())
    step_probs = []

    def multinomial(probs, num_samples):
        assert num_samples == 1 and probs.shape[0] == 1
        step_probs.append(probs.clone())
        u = next(it)
        cdf = torch.cumsum(probs[0].double(), 0)
        idx = int(torch.searchsorted(cdf, torch.tensor([u * cdf[-1].item()], dtype=torch.float64),
                                     right=True)[0])
        return torch.tensor([[min(idx, probs.shape[-1] - 1)]], dtype=torch.long)

    # generate(): exaggeration update (a fresh T3Cond, so the cached prompt embedding is rebuilt)
    cond = T3Cond(speaker_emb=conds_t3.speaker_emb,
                  cond_prompt_speech_tokens=conds_t3.cond_prompt_speech_tokens,
                  emotion_adv=p["exaggeration"] * torch.ones(1, 1, 1))
    normalized = cb_tts.punc_norm(case["text"])
    text_tokens = tokenizer.text_to_tokens(normalized)
    if p["cfg_weight"] > 0.0:
        text_tokens = torch.cat([text_tokens, text_tokens], dim=0)
    text_tokens = F.pad(text_tokens, (1, 0), value=t3.hp.start_text_token)
    text_tokens = F.pad(text_tokens, (0, 1), value=t3.hp.stop_text_token)

    rec = Recorder(t3)
    real = torch.multinomial
    torch.multinomial = multinomial
    try:
        with torch.inference_mode():
            tokens = t3.inference(
                t3_cond=cond, text_tokens=text_tokens, max_new_tokens=case["max_new_tokens"],
                temperature=p["temperature"], cfg_weight=p["cfg_weight"],
                repetition_penalty=p["repetition_penalty"], min_p=p["min_p"], top_p=p["top_p"])
    finally:
        torch.multinomial = real
        rec.close()
    tokens = tokens[0]
    tensors = dict(rec.out)
    tensors.update(
        text_tokens=text_tokens.long(), speaker_emb=cond.speaker_emb.float(),
        cond_prompt_speech_tokens=cond.cond_prompt_speech_tokens.long(),
        emotion_adv=cond.emotion_adv.float(), uniforms=torch.from_numpy(uniforms),
        tokens=tokens.long(), **{"probs.step0": step_probs[0]})
    meta = dict(case, normalized=normalized, tokens=tokens.tolist(),
                stopped=bool(tokens[-1].item() == t3.hp.stop_speech_token),
                hidden_steps=DUMP_HIDDEN_STEPS, logit_steps=min(DUMP_LOGIT_STEPS, len(tokens)),
                seed=seed)
    meta.pop("conds")
    meta["conds_source"] = case["conds"]
    return meta, tensors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=common.FIXTURES / "t3" / "tiny")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--intermediate", type=int, default=256)
    ap.add_argument("--max-text-tokens", type=int, default=126)
    ap.add_argument("--max-speech-tokens", type=int, default=252)
    ap.add_argument("--eos-scale", type=float, default=2.5)
    ap.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--manifest", type=Path,
                    help="also write the full-size checkpoint's names/shapes/dtypes here")
    args = ap.parse_args()
    torch.set_num_threads(2)

    if args.manifest:
        full = t3_mod.T3().eval()  # the reference's default (English) config
        rows = common.manifest(full)
        common.write_json({"source": "chatterbox-tts==0.1.7 T3() state_dict", "tensors": rows},
                          args.manifest)
        print(f"manifest: {len(rows)} tensors, {sum(np.prod(r['shape']) for r in rows)} params")
        del full

    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    common.seed_everything(args.seed)

    tok_path = out / "tokenizer.json"
    build_tokenizer(tok_path)
    tokenizer = EnTokenizer(str(tok_path))
    texts = []
    for t in TEXTS:
        n = cb_tts.punc_norm(t)
        texts.append({"raw": t, "normalized": n, "ids": tokenizer.encode(n)})
    common.write_json(texts, out / "texts.json")

    t3 = build_t3(args)
    init_weights(t3, args.eos_scale)
    common.write_json(config_json(t3), out / "config.json")
    common.save_tensors(common.state_dict_f16(t3), out / "t3_cfg.safetensors")
    print(f"tiny T3: {sum(p.numel() for p in t3.parameters())} params")

    # Built-in voice, saved the way the reference saves conds.pt (S3Gen part small but real-shaped).
    plen = t3.hp.speech_cond_prompt_len
    builtin = T3Cond(speaker_emb=torch.randn(1, t3.hp.speaker_embed_size),
                     cond_prompt_speech_tokens=torch.randint(0, 6561, (1, plen)),
                     emotion_adv=0.5 * torch.ones(1, 1, 1))
    gen = dict(prompt_token=torch.randint(0, 6561, (1, 12)), prompt_token_len=torch.tensor([12]),
               prompt_feat=torch.randn(1, 24, 80), prompt_feat_len=None,
               embedding=torch.randn(1, 192))
    cb_tts.Conditionals(builtin, gen).save(out / "conds.pt")
    builtin = cb_tts.Conditionals.load(out / "conds.pt").t3

    metas = []
    for i, case in enumerate(CASES):
        conds = builtin if case["conds"] == "conds.pt" else T3Cond(
            speaker_emb=torch.randn(1, t3.hp.speaker_embed_size),
            cond_prompt_speech_tokens=torch.randint(0, 6561, (1, plen)),
            emotion_adv=0.5 * torch.ones(1, 1, 1))
        meta, tensors = run_case(t3, tokenizer, case, conds, args.seed + 1 + i)
        common.save_tensors(tensors, out / f"case_{case['name']}.safetensors")
        metas.append(meta)
        print(f"{case['name']}: {len(meta['tokens'])} tokens, stopped={meta['stopped']}")
    common.write_json(metas, out / "cases.json")


if __name__ == "__main__":
    main()
