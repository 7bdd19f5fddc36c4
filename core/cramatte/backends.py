"""Inference backends: ONNX Runtime (default, any provider) and PyTorch (CPU, or CUDA with fp16)."""
import logging
import os

import numpy as np

log = logging.getLogger("cramatte")

# Device name -> ONNX Runtime execution provider, in order of preference for device="auto".
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def available_devices() -> list:
    """Devices ONNX Runtime can use on this machine, best first."""
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    return [d for d, p in PROVIDERS.items() if p in have]


def choose_providers(device: str = "auto") -> list:
    devices = available_devices()
    if device == "auto":
        chosen = devices[0]
    elif device not in PROVIDERS:
        raise ValueError(f"unknown device {device!r}; choose auto or one of {', '.join(PROVIDERS)}")
    elif device not in devices:
        log.warning("device %s is not available in this onnxruntime (has: %s); falling back to CPU",
                    device, ", ".join(devices))
        chosen = "cpu"
    else:
        chosen = device
    if chosen == "cpu" and device == "auto":
        log.info("no GPU execution provider available; running on CPU")
    providers = [PROVIDERS[chosen]]
    return providers if chosen == "cpu" else providers + ["CPUExecutionProvider"]


class OnnxBackend:
    name = "onnx"

    def __init__(self, path, device: str = "auto", threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or 0
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(os.fspath(path), opts, providers=choose_providers(device))
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            raise ValueError(f"{path} is not a valid cramatte ONNX model ({type(e).__name__}: {e})") from None
        names = [i.name for i in self.session.get_inputs()]
        if names != ["src", "src_lr", "k"]:
            raise ValueError(f"{path} is an ONNX model but not a cramatte one (inputs {names})")
        self.providers = self.session.get_providers()
        self.device = next(d for d, p in PROVIDERS.items() if p == self.providers[0])

    def __call__(self, src: np.ndarray, src_lr: np.ndarray, k: int) -> np.ndarray:
        return self.session.run(None, {"src": src, "src_lr": src_lr, "k": np.array(k, np.int64)})[0]


class TorchBackend:
    name = "torch"

    def __init__(self, path, device: str = "auto", threads: int | None = None):
        try:
            import torch
        except ImportError:
            raise ImportError("the torch backend needs PyTorch: pip install 'cramatte[torch]'") from None
        from .checkpoint import load_model

        if threads:
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise ValueError(f"the torch backend runs on cpu or cuda, not {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda asked for, but PyTorch sees no CUDA device")
        self.torch, self.device = torch, device
        self.model, _ = load_model(path)
        self.model.to(device)
        self.half = device == "cuda"
        if self.half:
            self.model.half()
        self.providers = [f"torch-{device}" + ("-fp16" if self.half else "")]

    def __call__(self, src: np.ndarray, src_lr: np.ndarray, k: int) -> np.ndarray:
        torch = self.torch
        dtype = torch.float16 if self.half else torch.float32
        with torch.inference_mode():
            alpha = self.model(torch.from_numpy(src).to(self.device, dtype),
                               torch.from_numpy(src_lr).to(self.device, dtype), torch.tensor(k))
        return alpha.float().cpu().numpy()
