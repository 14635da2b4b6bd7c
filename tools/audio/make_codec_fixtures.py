#!/usr/bin/env python3
"""Write the small M4A (AAC) and WebM (Opus) fixtures that vox-audio's decode tests read.

Neither format can be produced by the tools CI has (sox, espeak-ng), so the files are committed.
Run by developers, not CI, with PyAV (which bundles FFmpeg's encoders):

    pip install --target .cache/py/fw faster-whisper==1.2.1   # brings av
    PYTHONPATH=.cache/py/fw python3 tools/audio/make_codec_fixtures.py

Each file holds 0.5 s of a 440 Hz sine at amplitude 0.5, mono.
"""

import pathlib

import av
import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates" / "vox-audio" / "tests" / "fixtures"


def write(path: pathlib.Path, codec: str, rate: int) -> None:
    t = np.arange(rate // 2) / rate
    pcm = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = 64000
        frame_len = 960
        for start in range(0, len(pcm), frame_len):
            chunk = pcm[start : start + frame_len]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    print(path.name, path.stat().st_size, "bytes")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write(OUT / "sine_440_aac.m4a", "aac", 44100)
    write(OUT / "sine_440_opus.webm", "libopus", 48000)


if __name__ == "__main__":
    main()
