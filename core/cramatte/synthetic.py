"""A synthetic test clip with exact alpha per frame: a portrait that drifts, under handheld camera
shake, over a moving background, with sensor noise. Built from any image + alpha (e.g. the shipped sample)."""
import cv2
import numpy as np


def _background(rng, h: int, w: int) -> np.ndarray:
    """A smooth random colour field, twice the frame, to slide under the subject."""
    small = rng.uniform(0, 1, (h // 16 + 2, w // 8 + 2, 3)).astype(np.float32)
    return cv2.resize(small, (2 * w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def make_clip(fg: np.ndarray, alpha: np.ndarray, frames: int = 24, shake: float = 3.0, noise: float = 0.03,
              seed: int = 0):
    """fg HxWx3 float [0, 1], alpha HxW -> (frames [T, H, W, 3] float32, alphas [T, H, W] float32,
    the subject's offset in each frame [T, 2] (x, y) px)."""
    rng = np.random.default_rng(seed)
    h, w = alpha.shape
    bg = _background(rng, h, w)
    # Handheld camera shake: a smooth random path (three sinusoids per axis, 0.02-0.15 cycles a frame)
    # with `shake` px standard deviation, moving subject and background alike.
    freq, phase = rng.uniform(0.02, 0.15, (2, 3)), rng.uniform(0, 2 * np.pi, (2, 3))
    t_axis = np.arange(frames)[:, None, None]
    path = shake * np.sqrt(2 / 3) * np.sin(2 * np.pi * freq * t_axis + phase).sum(-1)  # [T, 2]
    out_f, out_a, offsets = [], [], []
    for t in range(frames):
        sx, sy = path[t]
        m_fg = np.float32([[1, 0, 0.5 * t + sx], [0, 1, sy]])  # the subject drifts right, half a pixel a frame
        m_bg = np.float32([[1, 0, -2.0 * t + sx], [0, 1, sy]])  # the background pans left
        a = cv2.warpAffine(alpha, m_fg, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        f = cv2.warpAffine(fg, m_fg, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        b = cv2.warpAffine(bg, m_bg, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame = a[..., None] * f + (1 - a[..., None]) * b + rng.normal(0, noise, (h, w, 3))
        out_f.append(np.clip(frame, 0, 1).astype(np.float32))
        out_a.append(a.astype(np.float32))
        offsets.append(m_fg[:, 2])
    return np.stack(out_f), np.stack(out_a), np.stack(offsets)
