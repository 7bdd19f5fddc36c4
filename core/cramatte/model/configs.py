"""Named configurations: one place for architecture and inference settings."""
import math
from dataclasses import dataclass, field

ARCH = {
    "lowres": {"dim": 128, "depth": 4, "heads": 4, "mlp_ratio": 2.0, "decoder": [64, 32]},
    "refiner": {"channels": [16, 24, 32], "token_dim": 64, "heads": 4, "layers": 2},
}


@dataclass(frozen=True)
class Config:
    """internal: long side (px) of the frame the low-res network sees; regions_per_edge: K per grid edge
    cell, K = regions_per_edge * (H/8 + W/8) 8x8 regions refined per frame (the paper uses 2)."""
    name: str
    internal: int
    regions_per_edge: float
    arch: dict = field(default_factory=lambda: ARCH)

    def internal_size(self, h: int, w: int) -> tuple:
        """Low-res network input size for an h x w frame: multiples of 32, never upscaled past the frame."""
        scale = min(1.0, self.internal / max(h, w))
        return tuple(max(32, int(round(s * scale / 32)) * 32) for s in (h, w))

    def regions(self, h: int, w: int) -> int:
        return max(1, int(self.regions_per_edge * (math.ceil(h / 8) + math.ceil(w / 8))))


CONFIGS = {
    "realtime": Config("realtime", internal=320, regions_per_edge=2.0),
    "quality": Config("quality", internal=512, regions_per_edge=4.0),
}


def get_config(name: str) -> Config:
    if name not in CONFIGS:
        raise ValueError(f"unknown configuration {name!r}; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name]
