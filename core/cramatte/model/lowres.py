"""Low-resolution network: conv trunk -> patch tokens -> ViT blocks -> conv decoder -> alpha + trimap."""
import torch
import torch.nn.functional as F
from torch import nn

from .trunk import Trunk, up2


class Attention(nn.Module):
    """Multi-head self-attention. `portable`: written out as matmuls and a softmax instead of PyTorch's
    fused kernel, for TorchScript that older PyTorch (Nuke's 1.12) can load; the same result."""
    portable = False

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):  # x: [N, L, C]
        n, length, c = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.portable:
            y = ((q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5).softmax(-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(n, length, c))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def _conv_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1))


class LowResNet(nn.Module):
    """RGB [N, 3, h, w] in [0, 1], h and w multiples of 32 -> logits at strides 16, 8 and 4.

    Each output has 4 channels: coarse alpha logit, then background / unknown / foreground logits.
    The trunk's stride-4 features are patchified (patch 4 -> stride-16 tokens) and attended over
    globally; a depthwise conv gives the tokens their position (any frame size works).
    """

    def __init__(self, dim: int = 128, depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0,
                 decoder: tuple = (64, 32)):
        super().__init__()
        self.trunk = Trunk()
        c = self.trunk.out_channels
        self.patch_embed = nn.Conv2d(c, dim, 4, stride=4)
        self.pos = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.up8 = _conv_act(dim + c, decoder[0])
        self.up4 = _conv_act(decoder[0] + c, decoder[1])
        self.head16 = nn.Conv2d(dim, 4, 1)
        self.head8 = nn.Conv2d(decoder[0], 4, 1)
        self.head4 = nn.Conv2d(decoder[1], 4, 1)

    def forward(self, x):
        f4, f8 = self.trunk(x * 2 - 1)
        t = self.patch_embed(f4)
        t = t + self.pos(t)
        n, c, h, w = t.shape
        t = self.norm(self.blocks(t.flatten(2).transpose(1, 2))).transpose(1, 2).reshape(n, c, h, w)
        d8 = self.up8(torch.cat([up2(t), f8], 1))
        d4 = self.up4(torch.cat([up2(d8), f4], 1))
        return self.head16(t), self.head8(d8), self.head4(d4)
