"""Export: ONNX graphs for the runtime (low-resolution network and refiner, dynamic sizes) and a
TorchScript package for Nuke's Inference node (Cattery layout)."""
import json
import logging
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .model.configs import get_config, internal_size, regions

OPSET = 17


class _Coarse(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, src_lr):
        return self.net.coarse(src_lr)[1]


def _export(module, args, path: Path, inputs: list, output: str, axes: dict, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, os.fspath(path), input_names=inputs, output_names=[output],
                          opset_version=opset, dynamo=False, dynamic_axes=axes)


def _staged_pair(out, overwrite: bool) -> list:
    """`Staged` files for a model pair (`name.onnx`, `name.refiner.onnx`), refused before any work if
    `out` is not an .onnx name or either file exists (without `overwrite`)."""
    from .backends import refiner_path
    from .io import Staged

    out = Path(out)
    if out.suffix != ".onnx" or out.name.endswith(".refiner.onnx"):
        raise ValueError(f"-o {out}: give the model's .onnx file name (e.g. model.onnx); "
                         "its refiner is written beside it as name.refiner.onnx")
    first = Staged(out, overwrite)
    try:
        return [first, Staged(refiner_path(out), overwrite)]
    except BaseException:
        first.discard()
        raise


def _publish_pair(stages: list) -> Path:
    """Publish the refiner, then the model (what `Matter` opens); on any error neither is left half-made."""
    try:
        stages[1].publish()
        return stages[0].publish()
    finally:
        for stage in stages:
            stage.discard()


def _fold_pads(path: Path) -> None:
    """Move each zero Pad that only feeds a Conv into that Conv's own (asymmetric) padding, in place.

    The trunk's TF-style stride-2 padding exports as separate Pad ops, which ONNX Runtime leaves
    unfused in the int8 graph (7% of its time). The pad amounts are computed by small constant
    subgraphs, so they are read by running the graph once."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = onnx.load(os.fspath(path))
    graph = model.graph
    pads = [n for n in graph.node if n.op_type == "Pad" and len(n.input) > 1]
    if not pads:
        return
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.ValueInfoProto(name=n.input[1]) for n in pads)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    values = session.run([n.input[1] for n in pads], {"src_lr": np.zeros((1, 3, 64, 96), np.float32)})
    for pad, amounts in zip(pads, values):
        users = [n for n in graph.node if pad.output[0] in n.input]
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        begin, end = amounts.reshape(2, -1)
        if (len(users) != 1 or users[0].op_type != "Conv" or mode != b"constant" or len(pad.input) > 2 and pad.input[2]
                or begin[:2].any() or end[:2].any()):
            continue
        conv = users[0]
        old = next((a for a in conv.attribute if a.name == "pads"), None)
        if old is not None and any(old.ints):
            continue
        if old is not None:
            conv.attribute.remove(old)
        conv.attribute.append(onnx.helper.make_attribute("pads", [int(v) for v in (*begin[2:], *end[2:])]))
        conv.input[0] = pad.input[0]
        graph.node.remove(pad)
    while True:  # drop what fed only the removed pads (their amount subgraphs)
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    onnx.save(model, os.fspath(path))


def export_onnx(weights, out, opset: int = OPSET, overwrite: bool = False) -> Path:
    """safetensors weights -> two ONNX graphs with dynamic sizes: `out` (src_lr [N,3,h,w] -> prob
    [N,2,h/4,w/4]) and `out` with suffix .refiner.onnx (patches [K,4,12,12], ordinal and mask [1,K,9]
    -> blocks [1,K,64]). Returns the path of the first; `Matter` finds the second beside it."""
    from .checkpoint import load_model

    stages = _staged_pair(out, overwrite)
    try:
        model, _ = load_model(weights)
        _export(_Coarse(model), (torch.rand(1, 3, 64, 96),), stages[0].tmp, ["src_lr"], "prob",
                {"src_lr": {0: "n", 2: "height", 3: "width"}, "prob": {0: "n", 2: "height4", 3: "width4"}}, opset)
        _fold_pads(stages[0].tmp)
        k = 6
        ordinal = torch.randint(0, k, (1, k, 9))
        _export(model.refiner, (torch.rand(k, 4, 12, 12), ordinal, torch.ones(1, k, 9, dtype=torch.bool)),
                stages[1].tmp, ["patches", "ordinal", "mask"], "blocks",
                {"patches": {0: "k"}, "ordinal": {1: "k"}, "mask": {1: "k"}, "blocks": {1: "k"}}, opset)
    except BaseException:
        for stage in stages:
            stage.discard()
        raise
    return _publish_pair(stages)


class _Recorder:
    """Stands in for a backend and keeps every low-res network input it passes on (calibration data)."""

    def __init__(self, backend):
        self.backend, self.feeds = backend, []

    def coarse(self, src_lr):
        self.feeds.append({"src_lr": src_lr})
        return self.backend.coarse(src_lr)

    def refine(self, patches, ordinal, mask):
        return self.backend.refine(patches, ordinal, mask)


def quantize_int8(onnx_path, images, out, config: str = "realtime", overwrite: bool = False) -> Path:
    """An int8 copy (static QDQ, per-channel weights) of a cramatte ONNX model's low-res network,
    calibrated on the inputs that `images` (paths) give it: writes `out`, and the fp32 refiner beside
    it (on the dev set an int8 refiner cost 1.8 MAD x1e3 for 3 ms at 1080p; the low-res network 0.6).
    The transformer blocks stay fp32: in int8 their softmax alone took longer than all their fp32 work.
    Weights are uint8 like the activations: with int8 weights, CPUs without VNNI (AVX2 only) saturate
    16-bit sums in ONNX Runtime's u8s8 kernel (dev_real MAD +3.4 against fp32 there, +0.9 with VNNI);
    symmetric, so every channel shares one zero point, as older ONNX Runtimes (Nuke's) require."""
    import shutil

    from .backends import refiner_path

    if not images:
        raise ValueError("int8 calibration needs at least one image")
    stages = _staged_pair(out, overwrite)
    try:
        _quantize(onnx_path, images, config, stages[0].tmp)
        shutil.copyfile(refiner_path(onnx_path), stages[1].tmp)
    except BaseException:
        for stage in stages:
            stage.discard()
        raise
    return _publish_pair(stages)


def _quantize(onnx_path, images, config: str, out: Path) -> None:
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .io import read_image
    from .runtime import Matter

    class Feeds(CalibrationDataReader):
        def __init__(self, feeds):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    matter = Matter(onnx_path, config=config, device="cpu")
    recorder = matter.backend = _Recorder(matter.backend)
    for path in images:
        frame, space = read_image(path)
        matter(frame, colorspace=space)
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)  # the quantiser logs (to the root logger) each tensor it leaves alone
        try:
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(os.fspath(onnx_path), os.fspath(pre), skip_symbolic_shape=True)
            transformer = [n.name for n in onnx.load(os.fspath(pre)).graph.node if n.name.startswith("/lowres/blocks/")]
            quantize_static(os.fspath(pre), os.fspath(out), Feeds(recorder.feeds), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
                            extra_options={"WeightSymmetric": True}, nodes_to_exclude=transformer)
        finally:
            root.setLevel(level)
    _one_zero_point_per_weight(out)


def _one_zero_point_per_weight(path: Path) -> None:
    """The symmetric quantiser gives an all-zero channel (a dead filter) zero point 0 and value 0, the
    others 128; rewrite it as 128 and 128 (still exactly 0), so every weight has a single zero point."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(os.fspath(path))
    tensors = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3 or node.input[0] not in tensors:
            continue
        q, zp = (numpy_helper.to_array(tensors[n]).copy() for n in (node.input[0], node.input[2]))
        if zp.size < 2 or zp.dtype != np.uint8 or (zp == 128).all():
            continue
        channels = np.moveaxis(q, next((a.i for a in node.attribute if a.name == "axis"), 1), 0)  # a view
        dead = zp != 128
        if not (channels[dead] == zp[dead].reshape(-1, *[1] * (q.ndim - 1))).all():
            raise ValueError(f"{node.name}: a channel of non-zero weights has zero point {zp[dead][0]}, not 128")
        channels[dead], zp[:] = 128, 128
        for name, array in ((node.input[0], q), (node.input[2], zp)):
            tensors[name].CopyFrom(numpy_helper.from_array(array, name))
    onnx.save(model, os.fspath(path))


class NukeMatte(nn.Module):
    """One tensor in, one out, as Nuke's Inference node wants: scene-linear RGB [1, C>=3, H, W] ->
    alpha [1, 1, H, W]. Colour conversion, internal resize and region count live inside forward."""

    def __init__(self, net: nn.Module, internal: int, regions_per_edge: float, max_regions: int):
        super().__init__()
        self.net, self.internal = net, internal
        self.regions_per_edge, self.max_regions = regions_per_edge, max_regions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2], x.shape[3]
        lin = x[:, :3].clamp(min=0.0)
        srgb = torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp(min=1e-12).pow(1.0 / 2.4) - 0.055)
        srgb = srgb.clamp(0.0, 1.0)
        lh, lw = internal_size(h, w, self.internal)
        lr = F.adaptive_avg_pool2d(srgb, [lh, lw])  # = interpolate(mode="area"); a builtin older TorchScript has
        return self.net(srgb, lr, torch.tensor(regions(h, w, self.regions_per_edge, self.max_regions)))


GIZMO = """Gizmo {{
 name {name}
 addUserKnob {{20 cramatte l "{name}"}}
 addUserKnob {{41 useGPUIfAvailable l "Use GPU if available" T Inference1.useGPUIfAvailable}}
 addUserKnob {{26 about l "" +STARTLINE T "cramatte portrait matte ({config}): writes rgba.alpha"}}
}}
 Input {{
  inputs 0
  name Input1
 }}
 Inference {{
  modelFile "\\[lsearch -inline \\[plugins -all {name}.cat] *.cat]"
  serialiseKnob {{}}
  name Inference1
 }}
 Output {{
  name Output1
 }}
"""

CATTERY_README = """# {name} for Nuke's Inference node

1. In NukeX (14 or newer), create a CatFileCreator node and set:
   - Torchscript File: `{name}.pt` (this folder)
   - Cat File: `{name}.cat` (this folder)
   - Channels In: `rgba.red, rgba.green, rgba.blue`; Channels Out: `rgba.alpha`
   - Model Id: `{name}`; Output Scale: 1
   then press Create .cat File.
2. Put this folder in `~/.nuke/Cattery/` (or any folder on NUKE_PATH); the gizmo finds `{name}.cat`
   beside it. `{name}.gizmo` runs it on its input and writes the matte into rgba.alpha.
3. The model takes the plate as scene-linear RGB (as Nuke holds it) and converts it inside.
"""


def export_nuke(weights, out_dir, config: str = "quality", name: str = "Cramatte", overwrite: bool = False) -> Path:
    """TorchScript model + gizmo + cat.json + instructions in out_dir/name (a Cattery package)."""
    from .checkpoint import load_model
    from .io import Staged

    cfg = get_config(config)
    net, _ = load_model(weights)
    from .model.lowres import Attention

    Attention.portable = True  # no fused attention kernel: Nuke 14 and 15 run PyTorch 1.12
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(net, (torch.rand(1, 3, 72, 104), torch.rand(1, 3, 64, 96), torch.tensor(40)),
                                     check_trace=False)
    finally:
        Attention.portable = False
    module = torch.jit.script(NukeMatte(traced, cfg.internal, cfg.regions_per_edge, cfg.max_regions))
    with Staged(Path(out_dir) / name, overwrite, folder=True) as folder:
        _write_cattery(module, folder, name, config)
    return Path(out_dir) / name


def _write_cattery(module, folder: Path, name: str, config: str) -> None:
    module.save(str(folder / f"{name}.pt"))
    (folder / f"{name}.gizmo").write_text(GIZMO.format(name=name, config=config))
    cat = {"minimum_nuke_version_required": 14.0, "version": 1, "category": "Matting",
           "description": f"{name}: cramatte portrait matte ({config} configuration)",
           "cats": [{"filepath": f"{name}.gizmo", "name": name}]}
    (folder / "cat.json").write_text(json.dumps(cat, indent=2) + "\n")
    (folder / "README.md").write_text(CATTERY_README.format(name=name))
