"""Inference backends: ONNX Runtime (default, any provider) and PyTorch (CPU, or CUDA with fp16)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

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


def resolve_device(device: str = "auto") -> str:
    """The device ONNX Runtime ends up on for `device`: the best one for "auto", CPU for one it lacks."""
    devices = available_devices()
    if device == "auto":
        return devices[0]
    if device not in PROVIDERS:
        raise ValueError(f"unknown device {device!r}; choose auto or one of {', '.join(PROVIDERS)}")
    return device if device in devices else "cpu"


def choose_providers(device: str = "auto") -> list:
    chosen = resolve_device(device)
    if device not in ("auto", chosen):
        log.warning("device %s is not available in this onnxruntime (has: %s); falling back to CPU",
                    device, ", ".join(available_devices()))
    if chosen == "cpu" and device == "auto":
        log.info("no GPU execution provider available; running on CPU")
    providers = [PROVIDERS[chosen]]
    return providers if chosen == "cpu" else providers + ["CPUExecutionProvider"]


def _cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def clamp_threads(threads: int | None) -> int:
    """A thread count within 1 .. this machine's cores (None or 0: all of them)."""
    if threads is not None and (not isinstance(threads, int) or threads < 0):
        raise ValueError(f"threads must be a whole number of at least 1 (or 0 for all cores), got {threads!r}")
    cores = _cores()
    if threads and threads > cores:
        log.warning("threads %d is more than this machine's %d cores; using %d", threads, cores, cores)
    return min(threads, cores) if threads else cores


def refiner_path(path) -> Path:
    """The refiner graph shipped beside a cramatte ONNX model: `name.onnx` -> `name.refiner.onnx`."""
    path = Path(path)
    return path.with_name(path.stem + ".refiner.onnx")


class OnnxBackend:
    """Two ONNX Runtime sessions: the low-resolution network (`name.onnx`: src_lr -> prob) and the
    refiner (`name.refiner.onnx`: patches, ordinal, mask -> blocks)."""
    name = "onnx"

    def __init__(self, path, device: str = "auto", threads: int | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # onnxruntime's own default (0) runs at half the speed of one thread per core on small VMs.
        opts.intra_op_num_threads = clamp_threads(threads)
        # Pool threads spin between a run's ops (about 2 ms a frame faster on 2 cores) and stop at its end:
        # the two sessions take turns with numpy work between them, which a still-spinning pool slows.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        opts.log_severity_level = 3
        providers = choose_providers(device)
        self.sessions = []
        for file, inputs in ((Path(path), ["src_lr"]), (refiner_path(path), ["patches", "ordinal", "mask"])):
            if not file.is_file():
                raise FileNotFoundError(f"model file not found: {file}")
            try:
                session = ort.InferenceSession(os.fspath(file), opts, providers=providers)
            except Exception as e:  # onnxruntime raises its own exception types for corrupt files
                raise ValueError(f"{file} is not a valid cramatte ONNX model ({type(e).__name__}: {e})") from None
            names = [i.name for i in session.get_inputs()]
            if names != inputs:
                raise ValueError(f"{file} is an ONNX model but not a cramatte one (inputs {names}, want {inputs})")
            self.sessions.append(session)
        self.providers = self.sessions[0].get_providers()
        self.device = next(d for d, p in PROVIDERS.items() if p == self.providers[0])

    def coarse(self, src_lr: np.ndarray) -> np.ndarray:
        """[N, 3, h, w] float32 -> [N, 2, h/4, w/4]: coarse alpha and p(unknown)."""
        return self.sessions[0].run(None, {"src_lr": src_lr})[0]

    def refine(self, patches: np.ndarray, ordinal: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """[K, 4, 12, 12] float32, [1, K, 9] int64, [1, K, 9] bool -> refined blocks [K, 64]."""
        return self.sessions[1].run(None, {"patches": patches, "ordinal": ordinal, "mask": mask})[0][0]


class TorchBackend:
    name = "torch"

    def __init__(self, path, device: str = "auto", threads: int | None = None):
        try:
            import torch
        except ImportError:
            raise ImportError("the torch backend needs PyTorch (cramatte's 'torch' extra): "
                              "pip install torch safetensors") from None
        from .checkpoint import load_model

        if threads:
            torch.set_num_threads(clamp_threads(threads))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise ValueError(f"the torch backend runs on cpu or cuda, not {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device cuda asked for, but PyTorch sees no CUDA device")
        self.torch, self.device = torch, device
        self.model, _ = load_model(path)
        self.model.to(device)
        self.dtype = torch.float16 if device == "cuda" else torch.float32
        self.model.to(self.dtype)
        self.providers = [f"torch-{device}" + ("-fp16" if device == "cuda" else "")]

    def _run(self, fn, *arrays):
        with self.torch.inference_mode():
            out = fn(*(self.torch.from_numpy(a).to(self.device, self.dtype if a.dtype == np.float32 else None)
                       for a in arrays))
        return out.float().cpu().numpy()

    def coarse(self, src_lr: np.ndarray) -> np.ndarray:
        return self._run(lambda x: self.model.coarse(x)[1], src_lr)

    def refine(self, patches: np.ndarray, ordinal: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self._run(self.model.refiner, patches, ordinal, mask)[0]
