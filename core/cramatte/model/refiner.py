"""Refinement network for 8x8 regions, with Cross Region Attention (CRA) between neighbouring regions."""
import torch
import torch.nn.functional as F
from torch import nn

from .torch_regions import MARGIN, NEIGHBOURS, REGION


def _conv_bn(cin: int, cout: int, stride: int = 1, padding: int = 0) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding, bias=False), nn.BatchNorm2d(cout),
                         nn.LeakyReLU(0.1))


class CRALayer(nn.Module):
    """Pre-norm layer where each region token queries the tokens of its 3x3 neighbourhood.

    A learned bias per head and grid offset encodes where each neighbour lies.
    """

    def __init__(self, dim: int, heads: int, mlp: int):
        super().__init__()
        self.heads = heads
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.pos_bias = nn.Parameter(torch.zeros(heads, len(NEIGHBOURS)))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))

    def forward(self, t, ordinal, absent):
        """t: tokens [N, K, C]; ordinal: [N, K, 9] from `torch_regions.neighbours`; absent: [N, K, 9, 1], -inf
        where its mask is false (no neighbour there), else 0."""
        n, k, c = t.shape
        hd = c // self.heads
        q = self.q(self.norm_q(t)).reshape(n, k, 1, self.heads, hd)
        kv = self.kv(self.norm_kv(t))  # per token: project each region once, then gather its neighbours
        rows = (ordinal + torch.arange(n, device=t.device)[:, None, None] * k).flatten()
        kv = kv.flatten(0, 1)[rows].reshape(n, k, -1, 2, self.heads, hd)  # [N, K, 9, 2, H, hd]
        # Nine keys per query: products and sums, not batched 1x9 matmuls (and their transposes).
        logits = (q * kv[:, :, :, 0]).sum(-1) * hd ** -0.5 + self.pos_bias.t() + absent  # [N, K, 9, H]
        y = (logits.softmax(2)[..., None] * kv[:, :, :, 1]).sum(2).reshape(n, k, c)
        t = t + self.proj(y)
        return t + self.mlp(self.norm2(t))


class Refiner(nn.Module):
    """Patches [N*K, 4, 12, 12] (RGB + upsampled coarse alpha, 2-px margin) -> refined alpha [N, K, 64].

    Encoder 8x8 -> 4x4 -> 2x2, CRA over neighbouring regions at the 2x2 bottleneck, decoder back to 8x8
    with skips; the output is a correction of the coarse alpha, clamped to [0, 1].
    """

    def __init__(self, channels: tuple = (16, 24, 32), token_dim: int = 64, heads: int = 4, layers: int = 2):
        super().__init__()
        c1, c2, c3 = channels
        self.enc = nn.Sequential(_conv_bn(4, c1), _conv_bn(c1, c1))  # 12 -> 8, unpadded
        self.down4 = _conv_bn(c1, c2, 2, 1)
        self.down2 = _conv_bn(c2, c3, 2, 1)
        self.token = nn.Linear(c3, token_dim)
        self.cra = nn.ModuleList([CRALayer(token_dim, heads, token_dim) for _ in range(layers)])
        self.untoken = nn.Linear(token_dim, c3)
        self.dec4 = _conv_bn(c3 + c2, c2, padding=1)
        self.dec8 = _conv_bn(c2 + c1 + 4, c1, padding=1)
        self.out = nn.Conv2d(c1, 1, 1)

    def forward(self, patches, ordinal, mask):
        n, k = ordinal.shape[:2]
        s8 = self.enc(patches)
        s4 = self.down4(s8)
        b = self.down2(s4)
        t = self.token(b.mean((2, 3))).reshape(n, k, -1)
        absent = torch.zeros(mask.shape, dtype=t.dtype, device=t.device).masked_fill(~mask, float("-inf"))[..., None]
        for layer in self.cra:
            t = layer(t, ordinal, absent)
        b = b + self.untoken(t).reshape(n * k, -1, 1, 1)
        d4 = self.dec4(torch.cat([_up2(b), s4], 1))
        centre = patches[:, :, MARGIN:MARGIN + REGION, MARGIN:MARGIN + REGION]
        d8 = self.dec8(torch.cat([_up2(d4), s8, centre], 1))
        alpha = (centre[:, 3:4] + self.out(d8)).clamp(0, 1)
        return alpha.reshape(n, k, REGION * REGION)


def _up2(x):
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
