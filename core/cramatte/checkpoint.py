"""Model weights as safetensors (never pickle), with the architecture in the file's metadata."""
import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "cramatte-1"


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
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path} is not a valid safetensors model file ({e})") from None
    if meta.get("format") != FORMAT or "arch" not in meta:
        raise ValueError(f"{path} is a safetensors file but not a cramatte model (no '{FORMAT}' metadata)")
    return state, json.loads(meta["arch"]), meta


def load_model(path):
    """Build a `CramatteNet` from a safetensors file; returns (model in eval mode, metadata)."""
    from .model.matting import CramatteNet

    state, arch, meta = read_weights(path)
    model = CramatteNet(**arch)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not match the architecture it declares "
                         f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)")
    return model.eval(), meta
