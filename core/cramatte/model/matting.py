"""The two-stage matting network: low-resolution ViT -> region selection -> refiner with CRA -> paste."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import torch_regions
from .lowres import LowResNet
from .refiner import Refiner


class CramatteNet(nn.Module):
    """forward(src, src_lr, k) -> alpha.

    src:    [N, 3, H, W] full-resolution RGB in [0, 1] (display-referred sRGB), any H, W >= 8.
    src_lr: [N, 3, h, w] the same frames resized to the internal resolution, h and w multiples of 32.
    k:      int64 scalar, number of 8x8 regions refined per frame (clamped to the grid size).
    Returns alpha [N, 1, H, W] in [0, 1]; with `return_aux=True`, a dict with the coarse logits at
    strides 16, 8 and 4 of `src_lr`, the region indices and the unrefined (upsampled coarse) alpha.
    """

    def __init__(self, lowres: dict | None = None, refiner: dict | None = None):
        super().__init__()
        self.lowres = LowResNet(**(lowres or {}))
        self.refiner = Refiner(**(refiner or {}))

    def coarse(self, src_lr):
        """src_lr -> (logits at strides 16, 8, 4; probabilities [N, 2, h/4, w/4]: coarse alpha, p(unknown))."""
        logits = self.lowres(src_lr)
        l4 = logits[2]
        return logits, torch.cat([torch.sigmoid(l4[:, :1]), l4[:, 1:].softmax(1)[:, 1:2]], 1)

    def forward(self, src, src_lr, k, return_aux: bool = False):
        h, w = src.shape[-2:]
        pad_h, pad_w = (-h) % torch_regions.REGION, (-w) % torch_regions.REGION
        x = F.pad(src, (0, pad_w, 0, pad_h), mode="replicate")
        hp, wp = x.shape[-2:]
        gh, gw = hp // torch_regions.REGION, wp // torch_regions.REGION

        logits, prob = self.coarse(src_lr)
        # Coarse alpha: bilinear to the frame; p(unknown): bilinear straight to the 8x8 grid.
        alpha_up = F.interpolate(prob[:, :1], size=(h, w), mode="bilinear", align_corners=False)
        alpha_up = F.pad(alpha_up, (0, pad_w, 0, pad_h), mode="replicate")
        p_unknown = F.interpolate(prob[:, 1:], size=(gh, gw), mode="bilinear", align_corners=False)[:, 0]

        idx, valid = torch_regions.select(p_unknown, k)
        ordinal, mask = torch_regions.neighbours(idx, valid, gh, gw)
        m = torch_regions.MARGIN
        patches = torch_regions.crop(F.pad(torch.cat([x, alpha_up], 1), (m, m, m, m), mode="replicate"), idx, gw)
        blocks = self.refiner(patches, ordinal, mask)
        alpha = torch_regions.paste(alpha_up, blocks, idx, valid)[..., :h, :w]
        if not return_aux:
            return alpha
        return {"alpha": alpha, "coarse": alpha_up[..., :h, :w], "logits": logits, "idx": idx, "valid": valid}
