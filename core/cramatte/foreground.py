"""Foreground colour estimation: decontaminated edge colours for compositing without background spill.

Blur-fusion estimation (Forte & Pitie, "Approximate Fast Foreground Colour Estimation", ICIP 2021):
two passes of alpha-weighted box blurs, large then small radius. Works in any colour encoding.
"""
import cv2
import numpy as np


def _pass(image, fg, bg, alpha, radius):
    k = (radius, radius)
    a = alpha[..., None]
    blurred_a = cv2.blur(alpha, k)[..., None]
    fg_mean = cv2.blur(fg * a, k) / (blurred_a + 1e-5)
    bg_mean = cv2.blur(bg * (1 - a), k) / (1 - blurred_a + 1e-5)
    fg = fg_mean + a * (image - a * fg_mean - (1 - a) * bg_mean)
    return fg, bg_mean


def estimate_foreground(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """image HxWx3 float32, alpha HxW float32 in [0, 1] -> foreground HxWx3 float32."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    alpha = np.ascontiguousarray(alpha, dtype=np.float32)
    lo, hi = float(image.min()), float(image.max())
    fg, bg = _pass(image, image, image, alpha, 91)
    fg, _ = _pass(image, fg, bg, alpha, 7)
    return np.clip(fg, min(lo, 0.0), max(hi, 1.0))
