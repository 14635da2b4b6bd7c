"""Drives the worker-overhead benchmark (bench/worker/run.sh): N jobs, one at a time, through the worker's
jobs API, and the same texts straight to the server's /tts (the peer: no worker). Prints per-job numbers as
JSON lines on stdout, for run.sh to summarize with the worker's own `job timings` log lines.

usage: drive.py WORKER_URL TTS_URL TTS_KEY N
"""

import json
import sys
import time
import urllib.request


def call(method, url, body=None, key=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.read()


def main():
    worker, tts, key, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    # Warm both paths once (the server's first request, the worker's first instance contact).
    call("POST", f"{tts}/tts", {"text": "Warm up."}, key)
    call("POST", f"{worker}/jobs", {"text": "Warm up the worker."})
    time.sleep(1.0)
    for i in range(n):
        text = f"Benchmark sentence number {i}, short and plain."
        t0 = time.perf_counter()
        call("POST", f"{tts}/tts", {"text": text}, key)
        direct = time.perf_counter() - t0

        t0 = time.perf_counter()
        job = json.loads(call("POST", f"{worker}/jobs", {"text": text}))
        post = time.perf_counter() - t0
        # Wait without hammering the worker (polls compete with the synthesis for the same cores); the time to
        # done is the job's own record (created → finished, worker clock, ms) plus the submit round trip.
        while True:
            st = json.loads(call("GET", f"{worker}/jobs/{job['id']}"))
            if st["state"] in ("done", "failed", "dead", "cancelled"):
                break
            time.sleep(0.05)
        assert st["state"] == "done", st
        e2e = post + (st["finished_ms"] - st["created_ms"]) / 1000.0
        print(json.dumps({"job": job["id"], "direct_s": direct, "e2e_s": e2e}), flush=True)


if __name__ == "__main__":
    main()
