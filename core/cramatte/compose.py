"""Turning alpha + foreground into what users put on screen: RGBA cut-outs and composites."""
from __future__ import annotations

import cv2
import numpy as np


def rgba(foreground: np.ndarray, alpha: np.ndarray, premultiplied: bool = False) -> np.ndarray:
    """HxWx3 foreground + HxW alpha -> HxWx4 float32, straight or premultiplied."""
    a = alpha[..., None]
    return np.concatenate([foreground * a if premultiplied else foreground, a], -1).astype(np.float32)


def background_like(kind: str, frame: np.ndarray, colour=(0.0, 1.0, 0.0), blur: float = 20.0,
                    image: np.ndarray | None = None) -> np.ndarray:
    """A background for `frame` (HxWx3 float32): "colour", "blur" (of the frame itself) or "image"."""
    h, w = frame.shape[:2]
    if kind == "colour":
        return np.broadcast_to(np.asarray(colour, np.float32), (h, w, 3))
    if kind == "blur":
        return cv2.GaussianBlur(frame, (0, 0), blur)
    if kind == "image":
        if image is None:
            raise ValueError("background image missing")
        return cv2.resize(image.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    raise ValueError(f"unknown background {kind!r}; choose colour, blur or image")


def composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return (foreground * a + background * (1 - a)).astype(np.float32)
