"""Reference side of the S3Gen benchmark: chatterbox-tts 0.1.7 `S3Gen()` at its default (shipped)
config with random weights, PyTorch on CPU, f32, 2 threads.

    .cache/py/cb/bin/python bench/chatterbox/s3gen/run_reference.py [PROMPT_TOKENS=75] [TOKENS=75] [REPEATS=3]

Times `S3Gen.inference(tokens, ref_dict=...)` (flow: encoder + 10 CFG Euler steps; HiFT; fade)
for a random prompt of PROMPT_TOKENS tokens (2 mel frames each) and TOKENS new tokens
(= TOKENS·0.04 s of audio); also the flow and HiFT halves alone. Medians over REPEATS after one
warm-up. Prints one JSON line; seconds of compute per second of audio is `s_per_audio_s`.
"""

import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402

from chatterbox.models.s3gen import S3Gen  # noqa: E402

torch.set_num_threads(2)


def main():
    prompt, n, repeats = (int(a) for a in (sys.argv[1:] + ["75", "75", "3"][len(sys.argv) - 1:])[:3])
    t0 = time.time()
    torch.manual_seed(0)
    s3 = S3Gen().eval()
    load_s = time.time() - t0
    ref = dict(prompt_token=torch.randint(0, 6561, (1, prompt)), prompt_token_len=torch.tensor([prompt]),
               prompt_feat=-5 + 2 * torch.randn(1, 2 * prompt, 80), prompt_feat_len=None,
               embedding=torch.randn(1, 192))
    tokens = torch.randint(0, 6561, (1, n))
    audio_s = n * 0.04

    def timed(f):
        t = time.time()
        out = f()
        return time.time() - t, out

    timed(lambda: s3.inference(tokens, ref_dict=dict(ref)))  # warm-up
    total, flow, hift = [], [], []
    for _ in range(repeats):
        total.append(timed(lambda: s3.inference(tokens, ref_dict=dict(ref)))[0])
        tf, mel = timed(lambda: s3.flow_inference(tokens, ref_dict=dict(ref), finalize=True))
        flow.append(tf)
        hift.append(timed(lambda: s3.hift_inference(mel))[0])
    med = statistics.median
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "prompt_tokens": prompt, "tokens": n, "audio_s": audio_s, "repeats": repeats,
        "load_s": round(load_s, 2), "total_s": round(med(total), 3), "flow_s": round(med(flow), 3),
        "hift_s": round(med(hift), 3), "s_per_audio_s": round(med(total) / audio_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
