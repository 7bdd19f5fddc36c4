"""MobileNetV2 + FPN feature trunk (the MoveNet Lightning layout), stride-4 features for the tokenizer.

Convolutions are created in the order of the original graph so pretrained weights map one to one
(`load_onnx_trunk`). BatchNorm is folded into the convolutions, as in the pretrained graph.
"""
import torch
import torch.nn.functional as F
from torch import nn

# (expansion, out channels, stride) for the 17 inverted-residual blocks of MobileNetV2 1.0
_BLOCKS = [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2), (6, 64, 1),
           (6, 64, 1), (6, 64, 1), (6, 96, 1), (6, 96, 1), (6, 96, 1), (6, 160, 2), (6, 160, 1), (6, 160, 1),
           (6, 320, 1)]


def _same_pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding for a 3x3 stride-2 conv on even sizes: one pixel bottom and right."""
    return F.pad(x, (0, 1, 0, 1)) if stride == 2 else x


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, expansion: int, cout: int, stride: int):
        super().__init__()
        hidden = cin * expansion
        self.expand = nn.Conv2d(cin, hidden, 1) if expansion != 1 else None
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride, padding=1 if stride == 1 else 0, groups=hidden)
        self.project = nn.Conv2d(hidden, cout, 1)
        self.stride = stride
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(_same_pad(y, self.stride))))
        return x + y if self.residual else y


class SeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class Trunk(nn.Module):
    """RGB in [-1, 1], H and W divisible by 32 -> features [N, 24, H/4, W/4] (plus stride 8/16/32 taps)."""

    out_channels = 24

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2, padding=0)
        blocks, cin = [], 32
        for expansion, cout, stride in _BLOCKS:
            blocks.append(InvertedResidual(cin, expansion, cout, stride))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(320, 1280, 1)
        self.top = nn.Conv2d(1280, 64, 1)
        self.lat16, self.fuse16 = nn.Conv2d(64, 64, 1), SeparableConv(64, 32)
        self.lat8, self.fuse8 = nn.Conv2d(32, 32, 1), SeparableConv(32, 24)
        self.lat4, self.fuse4 = nn.Conv2d(24, 24, 1), SeparableConv(24, 24)

    def forward(self, x):
        x = F.relu6(self.stem(_same_pad(x, 2)))
        taps = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in (2, 5, 9):  # last blocks at stride 4, 8 and 16
                taps[i] = x
        p = self.top(F.relu6(self.head(x)))
        p = F.relu(self.fuse16(up2(p) + self.lat16(taps[9])))
        p8 = F.relu(self.fuse8(up2(p) + self.lat8(taps[5])))
        return self.fuse4(up2(p8) + self.lat4(taps[2])), p8


def up2(x):
    """Bilinear x2 upsampling (the FPN's and the low-res decoder's)."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def _conv_order(trunk: Trunk) -> list:
    """Convolutions in the order the pretrained graph lists them."""
    convs = [trunk.stem]
    for b in trunk.blocks:
        convs += [c for c in (b.expand, b.depthwise, b.project) if c is not None]
    convs += [trunk.head, trunk.top, trunk.lat16, trunk.fuse16.depthwise, trunk.fuse16.pointwise,
              trunk.lat8, trunk.fuse8.depthwise, trunk.fuse8.pointwise,
              trunk.lat4, trunk.fuse4.depthwise, trunk.fuse4.pointwise]
    return convs


def load_onnx_trunk(trunk: Trunk, path: str) -> None:
    """Copy weights from the MoveNet Lightning trunk ONNX file (Conv nodes matched in graph order)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(path).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = [n for n in graph.node if n.op_type == "Conv"]
    convs = _conv_order(trunk)
    if len(nodes) != len(convs):
        raise ValueError(f"{path}: expected {len(convs)} Conv nodes, found {len(nodes)}")
    with torch.no_grad():
        for conv, node in zip(convs, nodes):
            w = inits[node.input[1]]
            if tuple(w.shape) != tuple(conv.weight.shape):
                raise ValueError(f"{path}: conv {node.name} has shape {w.shape}, expected {tuple(conv.weight.shape)}")
            conv.weight.copy_(torch.from_numpy(w.copy()))
            if conv.bias is not None:
                conv.bias.copy_(torch.from_numpy(inits[node.input[2]].copy()))
