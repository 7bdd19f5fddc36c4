"""Export: the whole two-stage network as one ONNX graph with dynamic batch, height and width."""
import os
import warnings
from pathlib import Path

import numpy as np

OPSET = 17


def export_onnx(weights, out, opset: int = OPSET) -> Path:
    """safetensors weights -> ONNX (inputs src [N,3,H,W], src_lr [N,3,h,w], k; output alpha [N,1,H,W])."""
    import torch

    from .checkpoint import load_model

    model, _ = load_model(weights)
    src, src_lr, k = torch.rand(1, 3, 72, 104), torch.rand(1, 3, 64, 96), torch.tensor(40)
    out = Path(out)
    tmp = out.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (src, src_lr, k), os.fspath(tmp), input_names=["src", "src_lr", "k"],
                          output_names=["alpha"], opset_version=opset, dynamo=False,
                          dynamic_axes={"src": {0: "n", 2: "height", 3: "width"},
                                        "src_lr": {0: "n", 2: "lr_height", 3: "lr_width"},
                                        "alpha": {0: "n", 2: "height", 3: "width"}})
    tmp.replace(out)
    return out


def max_difference(weights, onnx_path, src: np.ndarray, src_lr: np.ndarray, k: int) -> float:
    """Largest |alpha_onnx - alpha_torch| for one input (both on CPU, float32)."""
    from .backends import OnnxBackend, TorchBackend

    a = OnnxBackend(onnx_path, "cpu")(src, src_lr, k)
    b = TorchBackend(weights, "cpu")(src, src_lr, k)
    return float(np.abs(a - b).max())
