"""Helpers shared by the Chatterbox fixture generators (T3 and S3Gen).

Run by developers inside the reference venv (chatterbox-tts==0.1.7, see requirements.txt), never by
CI. Everything here is deterministic for a given seed. Keep these signatures stable: both
`make_t3_fixtures.py` and `make_s3gen_fixtures.py` import them.
"""

import json
import os
from pathlib import Path

# The reference must never reach the network: all weights are random and all files are local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "crates" / "vox-chatterbox" / "tests" / "fixtures"


def seed_everything(seed: int) -> None:
    """Seed torch and numpy (the reference draws from both)."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def round_params_to_f16(module: torch.nn.Module) -> None:
    """Round every parameter to the nearest fp16 value, in place, keeping fp32 storage.

    Weights stored as fp16 are then exact for an fp32 computation on both sides, which halves the
    fixture size at no cost to the parity check."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


def state_dict_f16(module: torch.nn.Module, drop_prefixes=("patched_model.",)) -> dict:
    """The module's state dict as contiguous fp16 tensors (floats) or as-is (integers), without the
    duplicate keys the reference adds at inference time (`patched_model.*` in T3)."""
    out = {}
    for k, v in module.state_dict().items():
        if any(k.startswith(p) for p in drop_prefixes):
            continue
        v = v.detach().cpu().contiguous()
        out[k] = v.half() if v.is_floating_point() else v
    return out


def save_tensors(tensors: dict, path: Path) -> None:
    """Write a safetensors file of contiguous CPU tensors (creating the parent directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path))


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def manifest(module: torch.nn.Module, drop_prefixes=("patched_model.",)) -> list:
    """Names, shapes and dtypes of a module's state dict, sorted by name: what a checkpoint saved
    from it holds."""
    rows = []
    for k, v in module.state_dict().items():
        if any(k.startswith(p) for p in drop_prefixes):
            continue
        rows.append({"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")})
    return sorted(rows, key=lambda r: r["name"])
