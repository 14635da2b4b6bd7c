#!/usr/bin/env python3
"""A full-size Chatterbox snapshot with random weights, for the server benchmark (never committed).

    .cache/py/cb/bin/python bench/chatterbox/server/make_snapshot.py OUT_DIR [SPEECH_TOKENS=75]

Writes what `ChatterboxTTS.from_local` reads (minus ve.safetensors, which only voice cloning uses):
t3_cfg.safetensors (T3() at the English config, torch's default init), s3gen.safetensors (the flow and HiFT
of S3Gen(); the cloning-only tokenizer and CAMPPlus are left out), a stand-in tokenizer.json and a conds.pt
whose prompts have the shipped shapes (T3: 150 prompt tokens; S3Gen: 150 tokens = 6 s, 300 mel frames).
Weights are stored as fp16 (half the disk; the engine computes in f32 either way).

Random weights never say when to stop, so one thing is arranged: learned speech position SPEECH_TOKENS+1 and
later carries a large vector d, and the stop token's head row is d. The residual stream then makes T3 draw
the stop token at exactly that step, so an utterance is SPEECH_TOKENS tokens (SPEECH_TOKENS/25 s of audio)
while every layer still runs as it would on real weights.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools" / "chatterbox"))
import common  # noqa: E402,F401  (offline environment)

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from chatterbox import tts as cb_tts  # noqa: E402
from chatterbox.models.s3gen import S3Gen  # noqa: E402
from chatterbox.models.t3 import T3  # noqa: E402
from chatterbox.models.t3.modules.cond_enc import T3Cond  # noqa: E402
from make_tokenizer import build_tokenizer  # noqa: E402


def main():
    out = Path(sys.argv[1])
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 75
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    t3 = T3().eval()
    with torch.no_grad():
        h = t3.hp
        d = torch.randn(t3.speech_head.weight.shape[1])
        d /= d.norm()
        t3.speech_pos_emb.emb.weight[k + 1:] = 3000.0 * d
        t3.speech_head.weight[h.stop_speech_token] = d
    sd = {n: v.detach().half().contiguous() if v.is_floating_point() else v.contiguous()
          for n, v in t3.state_dict().items() if not n.startswith("patched_model.")}
    save_file(sd, str(out / "t3_cfg.safetensors"))
    del t3, sd
    s3 = S3Gen().eval()
    sd = {n: v.detach().half().contiguous() for n, v in s3.state_dict().items()
          if n.startswith("flow.") or n.startswith("mel2wav.")}
    save_file(sd, str(out / "s3gen.safetensors"))
    del s3, sd
    build_tokenizer(out / "tokenizer.json")
    t3c = T3Cond(speaker_emb=torch.randn(1, 256), cond_prompt_speech_tokens=torch.randint(0, 6561, (1, 150)),
                 emotion_adv=0.5 * torch.ones(1, 1, 1))
    gen = dict(prompt_token=torch.randint(0, 6561, (1, 150)), prompt_token_len=torch.tensor([150]),
               prompt_feat=-5.0 + 2.0 * torch.randn(1, 300, 80), prompt_feat_len=None,
               embedding=torch.randn(1, 192))
    cb_tts.Conditionals(t3c, gen).save(out / "conds.pt")
    print(f"snapshot: {out} (speech tokens per utterance: {k})")


if __name__ == "__main__":
    main()
