"""Reference side of the T3 decode benchmark: chatterbox-tts 0.1.7 `T3()` at its default (full
English) config with random weights, PyTorch on CPU, f32, 2 threads.

    .cache/py/cb/bin/python bench/chatterbox/t3/run_reference.py [STEPS=32] [REPEATS=3] [TEXT_TOKENS=40]

Same measurement as the Rust example `t3_bench`: decode steps/s = (STEPS - 1) / (T(STEPS) - T(1))
with T(n) the wall time of one `T3.inference` call producing n tokens (CFG batch of two), medians
over REPEATS. Prints one JSON line.
"""

import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402

from chatterbox.models.t3 import T3  # noqa: E402
from chatterbox.models.t3.modules.cond_enc import T3Cond  # noqa: E402

torch.set_num_threads(2)


def main():
    steps, repeats, text_len = (int(a) for a in (sys.argv[1:] + ["32", "3", "40"][len(sys.argv) - 1:])[:3])
    t0 = time.time()
    torch.manual_seed(0)
    t3 = T3().eval()
    load_s = time.time() - t0
    hp = t3.hp
    cond = T3Cond(
        speaker_emb=torch.randn(1, hp.speaker_embed_size),
        cond_prompt_speech_tokens=torch.tensor([[(i * 37) % 6561 for i in range(hp.speech_cond_prompt_len)]]),
        emotion_adv=0.5 * torch.ones(1, 1, 1),
    )
    text = [3 + (i * 7) % 250 for i in range(text_len)]
    tokens = torch.tensor([[hp.start_text_token] + text + [hp.stop_text_token]] * 2)

    def run(n):
        torch.manual_seed(7)
        t = time.time()
        out = t3.inference(t3_cond=cond, text_tokens=tokens, max_new_tokens=n, temperature=0.8,
                           cfg_weight=0.5, repetition_penalty=1.2, min_p=0.05, top_p=1.0)
        assert out.shape[1] == n, "stopped early; change the seed"
        return time.time() - t

    run(2)  # warm-up
    rates, prefill = [], []
    for _ in range(repeats):
        t1 = run(1)
        tn = run(steps)
        prefill.append(t1)
        rates.append((steps - 1) / (tn - t1))
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "steps": steps, "repeats": repeats, "text_tokens": text_len, "load_s": round(load_s, 2),
        "prefill_s": round(statistics.median(prefill), 3),
        "decode_steps_per_s": round(statistics.median(rates), 3), "all_rates": rates,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
