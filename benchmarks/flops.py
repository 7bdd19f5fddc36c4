"""Parameters and GMACs of each named configuration, by stage, at common frame sizes.

    python benchmarks/flops.py
"""
import torch
from torch import nn

from cramatte.model.configs import CONFIGS
from cramatte.model.lowres import Attention
from cramatte.model.matting import CramatteNet
from cramatte.model.refiner import CRALayer

SIZES = [(720, 1280), (1080, 1920), (2160, 3840)]


def count_macs(model: nn.Module, *inputs) -> dict:
    """Multiply-accumulates of convolutions, linear layers and attention products, per top-level stage."""
    macs = {"lowres": 0, "refiner": 0}

    def hook(stage):
        def fn(module, args, out):
            if isinstance(module, nn.Conv2d):
                k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
                macs[stage] += out.numel() * k
            elif isinstance(module, nn.Linear):
                macs[stage] += out.numel() * module.in_features
            elif isinstance(module, Attention):  # q @ k^T and attn @ v
                n, length, c = args[0].shape
                macs[stage] += 2 * n * length * length * c
            elif isinstance(module, CRALayer):
                n, k, c = args[0].shape
                macs[stage] += 2 * n * k * 9 * c
        return fn

    handles = [m.register_forward_hook(hook(stage)) for stage in macs
               for m in getattr(model, stage).modules() if isinstance(m, (nn.Conv2d, nn.Linear, Attention, CRALayer))]
    with torch.no_grad():
        model(*inputs)
    for h in handles:
        h.remove()
    return macs


def main():
    for cfg in CONFIGS.values():
        model = CramatteNet(**cfg.arch).eval()
        params = {s: sum(p.numel() for p in getattr(model, s).parameters()) for s in ("lowres", "refiner")}
        print(f"{cfg.name}: {sum(params.values()) / 1e6:.2f} M parameters "
              f"(low-res {params['lowres'] / 1e6:.2f} M, refiner {params['refiner'] / 1e6:.3f} M); "
              f"internal {cfg.internal} px, {cfg.regions_rule}")
        for h, w in SIZES:
            lh, lw = cfg.internal_size(h, w)
            macs = count_macs(model, torch.rand(1, 3, h, w), torch.rand(1, 3, lh, lw), torch.tensor(cfg.regions(h, w)))
            print(f"  {w}x{h}: {sum(macs.values()) / 1e9:6.2f} GMACs (low-res {macs['lowres'] / 1e9:.2f} at {lw}x{lh}, "
                  f"refiner {macs['refiner'] / 1e9:.2f} over {cfg.regions(h, w)} regions)")


if __name__ == "__main__":
    main()
