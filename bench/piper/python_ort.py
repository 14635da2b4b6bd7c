#!/usr/bin/env python3
"""Python onnxruntime side of bench/piper/run.sh: same voice, same ids (written by the Rust bench), 1 intra-op
thread, scales [0, 1, 0]; prints load time and the median inference time over N runs.

    python_ort.py <voice.onnx> <ids.json> <runs>
"""
import json
import statistics
import sys
import time

import numpy as np
import onnxruntime


def main() -> None:
    model, ids_path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ids = json.load(open(ids_path))
    t = time.perf_counter()
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = onnxruntime.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    load = time.perf_counter() - t
    feed = {
        "input": np.array([ids], dtype=np.int64),
        "input_lengths": np.array([len(ids)], dtype=np.int64),
        "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
    }
    audio = sess.run(None, feed)[0]  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    secs = audio.size / 22050
    med = statistics.median(times)
    print(
        f"python load {load:.3f} s | audio {secs:.3f} s | inference median {med:.4f} s (RTF {med / secs:.4f}) "
        f"| {runs} runs, {len(ids)} ids, onnxruntime {onnxruntime.__version__}"
    )


if __name__ == "__main__":
    main()
