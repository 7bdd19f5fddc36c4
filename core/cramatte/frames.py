"""Frame validation and colour conversion: whatever a host hands us -> the model's float sRGB."""
import cv2
import numpy as np

MIN_SIDE = 16
MAX_SIDE = 16384
DTYPES = (np.uint8, np.uint16, np.float32)
COLORSPACES = ("srgb", "linear")


class FrameError(ValueError):
    """A frame the engine cannot matte; the message names the problem."""


def as_batch(frames) -> tuple:
    """Validate HxWxC or NxHxWxC (C = 3 or 4) frames; returns (NxHxWxC array, was_single)."""
    if not isinstance(frames, np.ndarray):
        raise FrameError(f"frames must be a numpy array, got {type(frames).__name__}")
    single = frames.ndim == 3
    batch = frames[None] if single else frames
    if batch.ndim != 4:
        raise FrameError(f"frames must be HxWxC or NxHxWxC, got shape {frames.shape}")
    n, h, w, c = batch.shape
    if c not in (3, 4):
        raise FrameError(f"frames must have 3 (RGB) or 4 (RGBA) channels, got {c} (shape {frames.shape})")
    if n == 0:
        raise FrameError("empty batch: no frames given")
    if min(h, w) < MIN_SIDE:
        raise FrameError(f"frame of {w}x{h} is too small: each side must be at least {MIN_SIDE} px")
    if max(h, w) > MAX_SIDE:
        raise FrameError(f"frame of {w}x{h} is too large: each side must be at most {MAX_SIDE} px")
    if batch.dtype not in DTYPES:
        raise FrameError(f"frames must be uint8, uint16 or float32, got {batch.dtype}")
    if batch.dtype == np.float32 and not np.isfinite(batch[..., :3]).all():
        raise FrameError("frames contain NaN or infinite values")
    return batch, single


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, None)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def to_unit_float(batch: np.ndarray) -> np.ndarray:
    """RGB channels as float32 (integers scaled to [0, 1]; floats as they are)."""
    rgb = batch[..., :3]
    if batch.dtype == np.float32:
        return rgb
    return rgb.astype(np.float32) * np.float32(1 / np.iinfo(batch.dtype).max)


def to_model_rgb(batch: np.ndarray, colorspace: str = "srgb") -> np.ndarray:
    """NxHxWx{3,4} frames -> NxHxWx3 display-referred sRGB, the model's input: 8-bit sRGB stays uint8
    (a view, no copy: the engine reads it directly), anything else becomes float32 in [0, 1].

    colorspace: "srgb" for display-referred pixels (PNG, JPEG, webcams), "linear" for scene-linear
    Rec.709 (EXR plates, Blender and Nuke buffers); linear values above 1 are clipped after encoding.
    """
    if colorspace not in COLORSPACES:
        raise FrameError(f"colorspace must be one of {COLORSPACES}, got {colorspace!r}")
    if batch.dtype == np.uint8 and colorspace == "srgb":
        return batch[..., :3]
    rgb = to_unit_float(batch)
    if colorspace == "linear":
        return np.clip(linear_to_srgb(rgb), 0, 1)
    return np.clip(rgb, 0, 1) if batch.dtype == np.float32 else rgb


def shrink(frame: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area-average resize to w x h: an integer box filter first (cv2's fast path), then the rest."""
    fh, fw = frame.shape[:2]
    k = max(1, min(fh // h, fw // w))
    if k > 1:
        frame = cv2.resize(frame[:fh - fh % k, :fw - fw % k], (fw // k, fh // k), interpolation=cv2.INTER_AREA)
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
