#!/usr/bin/env python3
"""Regenerate vox-audio's log-mel fixtures with faster-whisper's own FeatureExtractor.

Run by developers when the reference changes, not by CI:

    pip install --target .cache/py/fw faster-whisper==1.2.1
    PYTHONPATH=.cache/py/fw python3 tools/audio/make_mel_fixture.py

Writes little-endian f32 files plus mel_fixture.json (shapes, padding, versions) into
crates/vox-audio/tests/fixtures/; crates/vox-audio/tests/mel.rs compares against them.
"""

import json
import pathlib

import numpy as np
import faster_whisper
from faster_whisper.feature_extractor import FeatureExtractor

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates" / "vox-audio" / "tests" / "fixtures"
SR = 16000


def signal() -> np.ndarray:
    """1.3 s of two sines plus seeded noise, with a quiet gap so the max-8 floor is exercised."""
    t = np.arange(int(1.3 * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t)
    x += np.random.default_rng(1234).normal(0.0, 0.01, t.shape)
    x[int(0.6 * SR) : int(0.8 * SR)] *= 1e-4
    return x.astype(np.float32)


def short_signal() -> np.ndarray:
    """170 samples: shorter than the 200-sample reflect pad, so numpy reflects more than once."""
    return np.random.default_rng(99).normal(0.0, 0.1, 170).astype(np.float32)


def save(name: str, array: np.ndarray) -> None:
    np.ascontiguousarray(array, dtype="<f4").tofile(OUT / name)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    for case, x, padding, mels in [
        ("tones", signal(), 160, (80, 128)),
        ("short", short_signal(), 0, (80,)),
    ]:
        save(f"mel_{case}_input.f32", x)
        for n_mels in mels:
            features = FeatureExtractor(feature_size=n_mels)(x, padding=padding)
            save(f"mel_{case}_{n_mels}.f32", features)
            cases.append(
                {
                    "input": f"mel_{case}_input.f32",
                    "samples": int(x.shape[0]),
                    "padding": padding,
                    "n_mels": n_mels,
                    "frames": int(features.shape[1]),
                    "expected": f"mel_{case}_{n_mels}.f32",
                }
            )
    meta = {
        "generator": "tools/audio/make_mel_fixture.py",
        "faster_whisper": faster_whisper.__version__,
        "numpy": np.__version__,
        "layout": "expected is n_mels rows x frames columns, row-major, little-endian f32",
        "cases": cases,
    }
    (OUT / "mel_fixture.json").write_text(json.dumps(meta, indent=2) + "\n")
    for c in cases:
        print(f"{c['expected']}: {c['n_mels']} x {c['frames']}")


if __name__ == "__main__":
    main()
