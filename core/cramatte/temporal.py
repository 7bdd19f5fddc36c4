"""Video mode: temporal state carried across frames so mattes stop flickering without lagging motion.

The previous alpha is aligned to the new frame (global translation by phase correlation, which
undoes camera shake), then blended in only where the picture did not change (a per-pixel weight
that falls with the frame difference). A large whole-frame change is a scene cut: the state resets.
"""
import cv2
import numpy as np


class TemporalFilter:
    """strength: weight of the previous alpha where nothing moved (0 disables); motion: the frame
    difference (0-1 luminance) at which that weight has fallen to 1/e; cut: mean difference above
    which the state resets; size: long side of the analysis image."""

    def __init__(self, strength: float = 0.7, motion: float = 0.03, cut: float = 0.15, size: int = 192):
        self.strength, self.motion, self.cut, self.size = strength, motion, cut, size
        self.reset()

    def reset(self) -> None:
        self._grey = self._alpha = None

    def _analysis(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        scale = self.size / max(h, w)
        small = cv2.resize(rgb, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
        small = small.astype(np.float32) * np.float32(1 / 255 if rgb.dtype == np.uint8 else 1)
        return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)

    def __call__(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """rgb: HxWx3 uint8 or float in [0, 1] (the frame the model saw); alpha: HxW -> smoothed HxW float32."""
        grey = self._analysis(rgb)
        prev_grey, prev_alpha = self._grey, self._alpha
        if self.strength <= 0 or prev_grey is None or prev_grey.shape != grey.shape or prev_alpha.shape != alpha.shape:
            self._grey, self._alpha = grey, alpha.astype(np.float32)
            return self._alpha
        (dx, dy), _ = cv2.phaseCorrelate(prev_grey.astype(np.float64), grey.astype(np.float64))
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        aligned_grey = cv2.warpAffine(prev_grey, shift, grey.shape[::-1], borderMode=cv2.BORDER_REPLICATE)
        diff = cv2.GaussianBlur(np.abs(grey - aligned_grey), (0, 0), 1.0)
        if float(diff.mean()) > self.cut:
            self._grey, self._alpha = grey, alpha.astype(np.float32)
            return self._alpha
        h, w = alpha.shape
        scale = w / grey.shape[1]
        full_shift = np.float32([[1, 0, dx * scale], [0, 1, dy * scale]])
        aligned = cv2.warpAffine(prev_alpha, full_shift, (w, h), borderMode=cv2.BORDER_REPLICATE)
        weight = cv2.resize(self.strength * np.exp(-diff / self.motion), (w, h), interpolation=cv2.INTER_LINEAR)
        out = (weight * aligned + (1 - weight) * alpha).astype(np.float32)
        self._grey, self._alpha = grey, out
        return out
