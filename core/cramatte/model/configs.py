"""Named configurations: one place for architecture and inference settings."""
import math
from dataclasses import dataclass, field
from typing import Tuple

ARCH = {
    "lowres": {"dim": 128, "depth": 4, "heads": 4, "mlp_ratio": 2.0, "decoder": [64, 32]},
    "refiner": {"channels": [16, 24, 32], "token_dim": 64, "heads": 4, "layers": 2},
}


@dataclass(frozen=True)
class Config:
    """internal: long side (px) of the frame the low-res network sees. K, the 8x8 regions refined per
    frame: regions_per_edge * (H/8 + W/8) (the paper uses 2), at most max_regions (0: no cap), so a
    real-time frame's refiner cost is bounded whatever its size."""
    name: str
    internal: int
    regions_per_edge: float
    max_regions: int = 0
    arch: dict = field(default_factory=lambda: ARCH)

    def internal_size(self, h: int, w: int) -> tuple:
        return internal_size(h, w, self.internal)

    def regions(self, h: int, w: int) -> int:
        return regions(h, w, self.regions_per_edge, self.max_regions)

    @property
    def regions_rule(self) -> str:
        return f"K = {self.regions_per_edge:g} x (H/8 + W/8)" + (f", at most {self.max_regions}" if self.max_regions else "")


def internal_size(h: int, w: int, internal: int) -> Tuple[int, int]:
    """Low-res network input size for an h x w frame: multiples of 32, never upscaled past the frame.
    TorchScript-compatible, as the Nuke model calls it."""
    scale = min(1.0, float(internal) / float(max(h, w)))
    return max(32, int(round(h * scale / 32.0)) * 32), max(32, int(round(w * scale / 32.0)) * 32)


def regions(h: int, w: int, per_edge: float, cap: int = 0) -> int:
    """K for an h x w frame (see `Config`); TorchScript-compatible, as the Nuke model calls it."""
    k = max(1, int(per_edge * (math.ceil(h / 8.0) + math.ceil(w / 8.0))))
    return min(k, cap) if cap > 0 else k


CONFIGS = {
    "realtime": Config("realtime", internal=320, regions_per_edge=6.0, max_regions=500),
    # sized for 720p near 60 fps on 2 cores (17 ms measured, README): a 256 px low-res input and 450
    # regions (dev MAD +1.0)
    "fast": Config("fast", internal=256, regions_per_edge=6.0, max_regions=450),
    # every uncertain region refined: on real photos it beat a 512 px low-res input (which also left
    # blocky holes in clothing) on both dev sets (docs in MODEL_CARD.md)
    "quality": Config("quality", internal=320, regions_per_edge=12.0),
}


def get_config(name: str) -> Config:
    if name not in CONFIGS:
        raise ValueError(f"unknown configuration {name!r}; choose one of {', '.join(CONFIGS)}")
    return CONFIGS[name]
