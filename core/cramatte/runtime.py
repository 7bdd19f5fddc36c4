"""The public API: `Matter` turns frames into alpha mattes (and foreground colours on request)."""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from . import compose
from . import frames as F
from . import numpy_regions as R
from .backends import OnnxBackend, TorchBackend, resolve_device
from .foreground import estimate_foreground
from .model.configs import Config, get_config
from .temporal import TemporalFilter

BACKENDS = {"onnx": OnnxBackend, "torch": TorchBackend}


def shipped_model(suffix: str = ".onnx") -> Path:
    """Path of the model shipped with the package (`.onnx` or `.safetensors`)."""
    path = Path(str(resources.files("cramatte") / "weights" / f"cramatte{suffix}"))
    if not path.is_file():
        raise FileNotFoundError(f"the shipped model {path} is missing; reinstall cramatte")
    return path


@dataclass
class Matte:
    """alpha: [H, W] (or [N, H, W]) float32 in [0, 1]. foreground: [..., H, W, 3] float32 in the input's
    colour encoding, present when asked for."""
    alpha: np.ndarray
    foreground: np.ndarray | None = None

    def rgba(self, premultiplied: bool = False) -> np.ndarray:
        """[..., H, W, 4] float32 cut-out (needs the foreground)."""
        if self.foreground is None:
            raise ValueError("RGBA needs the foreground: call the Matter with foreground=True")
        return compose.rgba(self.foreground, self.alpha, premultiplied)


class Matter:
    """Portrait matting from plain frames.

    model:   path to a cramatte `.onnx` (with its `.refiner.onnx` beside it) or `.safetensors` file; None
             for the shipped model (on the CPU with the onnx backend, its int8 graphs).
    config:  named configuration ("realtime", "fast" or "quality") or a `Config`: internal resolution and regions.
    backend: "onnx" (default; needs a .onnx model) or "torch" (needs a .safetensors model).
    device:  "auto", "cpu", "cuda", "tensorrt", "directml" or "coreml" (onnx), "auto"/"cpu"/"cuda" (torch).
    threads: CPU threads for inference (None or 0: every core).
    """

    CHUNK = 4  # frames of a batch matted together

    def __init__(self, model=None, config="realtime", backend: str = "onnx", device: str = "auto",
                 threads: int | None = None):
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.config = config if isinstance(config, Config) else get_config(config)
        want = ".onnx" if backend == "onnx" else ".safetensors"
        if model is None and backend == "onnx" and resolve_device(device) == "cpu":
            self.model_path = shipped_model(".int8.onnx")
        else:
            self.model_path = Path(model) if model is not None else shipped_model(want)
        if self.model_path.suffix != want:
            raise ValueError(f"the {backend} backend loads {want} files, got {self.model_path}")
        self.backend = BACKENDS[backend](self.model_path, device, threads)

    @property
    def providers(self) -> list:
        return list(self.backend.providers)

    def __call__(self, frames: np.ndarray, colorspace: str = "srgb", foreground: bool = False) -> Matte:
        """frames: [H, W, C] or [N, H, W, C], C = 3 (RGB) or 4 (RGBA; its alpha is ignored), uint8, uint16
        or float32; colorspace "srgb" (display-referred) or "linear" (scene-linear Rec.709).
        Returns one `Matte` shaped like the input: alpha [H, W] for a frame, [N, H, W] for a batch.
        A batch runs `CHUNK` frames at a time, so working memory beyond the result does not grow with N."""
        batch, single = F.as_batch(frames)
        n, h, w = batch.shape[:3]
        alpha = np.empty((n, h, w), np.float32)
        fg = np.empty((n, h, w, 3), np.float32) if foreground else None
        for s in range(0, n, self.CHUNK):
            part = batch[s:s + self.CHUNK]
            alpha[s:s + len(part)] = self.alpha(F.to_model_rgb(part, colorspace))
            if foreground:
                fg[s:s + len(part)] = self._foreground(part, alpha[s:s + len(part)])
        return Matte(alpha[0], None if fg is None else fg[0]) if single else Matte(alpha, fg)

    def alpha(self, rgb: np.ndarray) -> np.ndarray:
        """[N, H, W, 3] sRGB, uint8 or float32 in [0, 1] (see `frames.to_model_rgb`) -> alpha [N, H, W].

        The low-resolution network sees the frames resized to the configuration's internal size; its
        coarse alpha is upsampled to the frame, and the refiner redoes the K most uncertain 8x8 cells.
        """
        n, h, w, _ = rgb.shape
        lh, lw = self.config.internal_size(h, w)
        src_lr = np.stack([F.shrink(f, lw, lh) for f in rgb])
        src_lr = np.ascontiguousarray(src_lr.transpose(0, 3, 1, 2), dtype=np.float32)
        if rgb.dtype == np.uint8:
            src_lr *= np.float32(1 / 255)
        prob = self.backend.coarse(src_lr)
        gh, gw = R.grid_shape(h, w)
        k = self.config.regions(h, w)
        alpha = np.empty((n, h, w), np.float32)
        picks, patches, ordinals, masks = [], [], [], []
        total = 0  # regions so far: one refiner call for the batch, ordinals offset per frame
        for i in range(n):
            cv2.resize(prob[i, 0], (w, h), dst=alpha[i], interpolation=cv2.INTER_LINEAR)
            idx = R.select(cv2.resize(prob[i, 1], (gw, gh), interpolation=cv2.INTER_LINEAR), k)
            ordinal, mask = R.neighbours(idx, gh, gw)
            picks.append(idx)
            patches.append(R.crop(rgb[i], alpha[i], idx, gw))
            ordinals.append(ordinal + total)
            masks.append(mask)
            total += len(idx)
        if total:
            join = (lambda parts: parts[0]) if n == 1 else np.concatenate
            blocks = self.backend.refine(join(patches), join(ordinals)[None], join(masks)[None])
            start = 0
            for i, idx in enumerate(picks):
                R.paste(alpha[i], blocks[start:start + len(idx)], idx, gw)
                start += len(idx)
        return alpha

    @staticmethod
    def _foreground(batch: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Edge-decontaminated foreground colours [N, H, W, 3] of `batch` in its own colour encoding."""
        return np.stack([estimate_foreground(f, a) for f, a in zip(F.to_unit_float(batch), alpha)])


class VideoMatter:
    """Video mode over a `Matter`: frames in order, one at a time; the temporal state (see
    `cramatte.temporal`) removes flicker and resets by itself on scene cuts. `reset()` starts afresh."""

    def __init__(self, matter: Matter, **temporal):
        self.matter, self.filter = matter, TemporalFilter(**temporal)

    def reset(self) -> None:
        self.filter.reset()

    def __call__(self, frame: np.ndarray, colorspace: str = "srgb", foreground: bool = False) -> Matte:
        batch, single = F.as_batch(frame)
        if not single:
            raise F.FrameError("video mode takes one frame at a time, in order")
        rgb = F.to_model_rgb(batch, colorspace)
        alpha = self.filter(rgb[0], self.matter.alpha(rgb)[0])
        return Matte(alpha, Matter._foreground(batch, alpha[None])[0] if foreground else None)
