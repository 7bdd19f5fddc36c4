"""Augmentations for matting: affine + smooth warp, colour jitter, background, webcam artefacts."""
import cv2
import numpy as np
from pymatting import estimate_foreground_ml


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colour without background spill (multi-level estimation, float32 RGB in [0, 1])."""
    return np.clip(estimate_foreground_ml(rgb.astype(np.float64), alpha.astype(np.float64)), 0, 1).astype(np.float32)


def geometric(rng, layers: list, size: int, cover: bool = True, fill_last: bool = False,
              zoom_out: bool = False) -> list:
    """One random affine (rotation and shear 5 deg, aspect, flip; scale 1-1.4x 'cover' for photos, which
    keep their framing, or 0.5-0.95x 'fit' for cut-outs) plus a smooth random warp, applied alike to
    every layer (HxW or HxWxC float32), output size x size.

    Pixels outside the source are zero (transparent) for every layer; with `fill_last` false the last
    layer (the photo itself) is replicated at the border instead. `zoom_out` (photos that keep their own
    background): the whole photo fits the crop at 0.7-1x, the rest mirrored in every layer alike, so
    the person appears smaller, as in a whole frame, and the label still matches the picture.
    """
    h, w = layers[0].shape[:2]
    if zoom_out:
        scale = size / max(h, w) * rng.uniform(0.7, 1.0)
    else:
        scale = size / min(h, w) * rng.uniform(1.0, 1.4) if cover else size / max(h, w) * rng.uniform(0.5, 0.95)
    aspect = np.exp(rng.uniform(-0.15, 0.15))
    sx, sy = scale * aspect, scale / aspect
    if rng.random() < 0.5:
        sx = -sx
    rot, shear = np.deg2rad(rng.uniform(-5, 5)), np.deg2rad(rng.uniform(-5, 5))
    a = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) @ np.array([[1, np.tan(shear)], [0, 1]])
    a = a @ np.diag([sx, sy])
    slack = np.maximum(np.array([w, h]) - size / scale, 0) / 2 if cover or zoom_out else np.array([w, h]) * 0.3
    centre_src = np.array([w / 2, h / 2]) + rng.uniform(-1, 1, 2) * slack
    t = np.array([size / 2, size / 2]) - a @ centre_src
    m = np.hstack([a, t[:, None]]).astype(np.float32)
    grid = _warp_field(rng, size, m)
    out = []
    for i, layer in enumerate(layers):
        border = cv2.BORDER_REPLICATE if (i == len(layers) - 1 and not fill_last) else cv2.BORDER_CONSTANT
        border = cv2.BORDER_REFLECT_101 if zoom_out else border
        out.append(cv2.remap(layer, grid[0], grid[1], cv2.INTER_LINEAR, borderMode=border))
    out[1] = np.clip(out[1], 0, 1)
    return out


def _warp_field(rng, size: int, m: np.ndarray, strength: float = 0.03):
    """Source coordinates for each output pixel: the inverse affine plus a smooth random displacement."""
    inv = cv2.invertAffineTransform(m)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    disp = rng.normal(0, strength * size, (2, 4, 4)).astype(np.float32) * (rng.random() < 0.5)
    dx = cv2.resize(disp[0], (size, size), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(disp[1], (size, size), interpolation=cv2.INTER_CUBIC)
    xs, ys = xs + dx, ys + dy
    return (inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]).astype(np.float32), \
           (inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]).astype(np.float32)


def colour(rng, rgb: np.ndarray) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-10, 10)) % 360
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.7, 1.3), 0, 1)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    rgb = (rgb - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.1, 0.1)
    return np.clip(rgb, 0, 1).astype(np.float32)


def background(rng, rgb: np.ndarray, size: int) -> np.ndarray:
    """Random crop of a background to size x size, flipped, jittered, sometimes defocused."""
    h, w = rgb.shape[:2]
    crop = int(min(h, w) * rng.uniform(0.5, 1.0))
    y, x = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    bg = cv2.resize(rgb[y:y + crop, x:x + crop], (size, size), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
        bg = bg[:, ::-1]
    bg = colour(rng, bg.astype(np.float32) / 255)
    if rng.random() < 0.3:
        bg = cv2.GaussianBlur(bg, (0, 0), rng.uniform(1, 4))
    return bg


def camera(rng, rgb: np.ndarray) -> np.ndarray:
    """Webcam artefacts on the final frame: blur, sensor noise, JPEG compression."""
    if rng.random() < 0.2:
        rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.3:
        rgb = rgb + rng.normal(0, rng.uniform(0.005, 0.03), rgb.shape).astype(np.float32)
    rgb = np.clip(rgb, 0, 1)
    if rng.random() < 0.3:
        ok, buf = cv2.imencode(".jpg", (rgb * 255).astype(np.uint8)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        rgb = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    return rgb.astype(np.float32)
