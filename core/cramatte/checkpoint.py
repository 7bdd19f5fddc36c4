"""Model weights as safetensors (never pickle), with the architecture in the file's metadata."""
from __future__ import annotations

import json
import reprlib
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "cramatte-1"
# The architecture a file may declare: known parts and keys, each number within a bound, so a small
# file cannot make the loader build a huge network.
LIMITS = {
    "lowres": {"dim": 1024, "depth": 24, "heads": 32, "mlp_ratio": 8, "decoder": 512},
    "refiner": {"channels": 512, "token_dim": 1024, "heads": 32, "layers": 8},
}
LENGTHS = {"decoder": (1, 4), "channels": (3, 3)}


def validate_arch(arch, path) -> dict:
    """`arch` if it names only known parts and keys with numbers in bounds; else a ValueError naming `path`."""
    def bad(why):
        return ValueError(f"{path} declares an architecture cramatte cannot build: {why}")

    if not isinstance(arch, dict):
        raise bad("not a mapping")
    if set(arch) - set(LIMITS):
        raise bad(f"unknown part(s) {', '.join(map(repr, sorted(set(arch) - set(LIMITS))))}")
    for part, spec in arch.items():
        if not isinstance(spec, dict):
            raise bad(f"{part} is not a mapping")
        for key, value in spec.items():
            if key not in LIMITS[part]:
                raise bad(f"unknown key {part}.{key}")
            values = value if isinstance(value, list) else [value]
            lo, hi = LENGTHS.get(key, (1, 1))
            if isinstance(value, list) != (key in LENGTHS) or not lo <= len(values) <= hi:
                raise bad(f"{part}.{key} = {reprlib.repr(value)} has the wrong form")
            for v in values:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= LIMITS[part][key]:
                    raise bad(f"{part}.{key} = {reprlib.repr(value)} is outside 1..{LIMITS[part][key]}")
    return arch


def save_model(model, path, arch: dict, extra: dict | None = None) -> None:
    meta = {"format": FORMAT, "arch": json.dumps(arch), **(extra or {})}
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata=meta)


def read_weights(path) -> tuple:
    """(state dict, architecture dict, metadata) from a cramatte safetensors file, with clear errors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path} is not a valid safetensors model file ({e})") from None
    if meta.get("format") != FORMAT or "arch" not in meta:
        raise ValueError(f"{path} is a safetensors file but not a cramatte model (no '{FORMAT}' metadata)")
    try:
        arch = validate_arch(json.loads(meta["arch"]), path)
    except json.JSONDecodeError:
        raise ValueError(f"{path} has unreadable architecture metadata") from None
    except RecursionError:
        raise ValueError(f"{path} has architecture metadata nested too deeply to read") from None
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path} is not a valid safetensors model file ({e})") from None
    return state, arch, meta


def load_model(path):
    """Build a `CramatteNet` from a safetensors file; returns (model in eval mode, metadata)."""
    from .model.matting import CramatteNet

    import torch

    state, arch, meta = read_weights(path)
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated until the file is known to fit
            want = {k: tuple(v.shape) for k, v in CramatteNet(**arch).state_dict().items()}
    except Exception as e:  # e.g. heads that do not divide the width
        raise ValueError(f"{path} declares an architecture cramatte cannot build ({e})") from None
    have = {k: tuple(v.shape) for k, v in state.items()}
    wrong = sorted(k for k in want.keys() & have.keys() if want[k] != have[k])
    missing, unexpected = sorted(want.keys() - have.keys()), sorted(have.keys() - want.keys())
    if wrong or missing or unexpected:
        detail = [f"{k}: {have[k]} in the file, {want[k]} expected" for k in wrong[:3]]
        detail += [f"{len(missing)} missing"] * bool(missing) + [f"{len(unexpected)} unexpected"] * bool(unexpected)
        raise ValueError(f"{path} does not match the architecture it declares ({'; '.join(detail)})")
    model = CramatteNet(**arch)
    model.load_state_dict(state)
    return model.eval(), meta
