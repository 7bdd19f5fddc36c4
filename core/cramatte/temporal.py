"""Video mode: temporal state carried across frames so mattes stop flickering without lagging motion.

The previous output alpha is carried to the new frame along dense optical flow (DIS, on a small grey
copy of the frames), then blended with the new per-frame alpha only where the flow explains the new
picture: a per-pixel weight falls with the photometric residual of the warp, so occlusions, new
content and fast motion take the new alpha as it is. A large whole-frame residual is a scene cut:
the state resets.
"""
import cv2
import numpy as np

from .frames import shrink

STRENGTH = 0.8  # default weight of the carried alpha (cli, evaluation, benchmarks)


class TemporalFilter:
    """strength: weight of the carried alpha where the flow fits (0 disables); motion: the warp residual
    (0-1 luminance, after a small blur) at which that weight has fallen to 1/e; jump: the difference
    between carried and new alpha at which the weight has fallen to 1/e (flicker is small, a missed
    motion is not); cut: mean residual above which the state resets; size: long side of the analysis
    image the flow is computed on."""

    def __init__(self, strength: float = STRENGTH, motion: float = 0.1, jump: float = 0.6, cut: float = 0.12,
                 size: int = 256):
        self.strength, self.motion, self.jump, self.cut, self.size = strength, motion, jump, cut, size
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self._grids: dict = {}
        self.reset()

    def reset(self) -> None:
        self._grey = self._alpha = None

    def _analysis(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        scale = self.size / max(h, w)
        small = shrink(rgb, max(16, round(w * scale)), max(16, round(h * scale)))
        if small.dtype != np.uint8:
            small = (np.clip(small, 0, 1) * 255 + 0.5).astype(np.uint8)
        return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)

    def _grid(self, h: int, w: int) -> np.ndarray:
        """Pixel coordinates [h, w, 2] (x, y), kept per size."""
        if (h, w) not in self._grids:
            self._grids[(h, w)] = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), -1)
        return self._grids[(h, w)]

    def __call__(self, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """rgb: HxWx3 uint8 or float in [0, 1] (the frame the model saw); alpha: HxW -> smoothed HxW float32."""
        alpha = alpha.astype(np.float32, copy=False)
        grey = self._analysis(rgb)
        prev_grey, prev_alpha = self._grey, self._alpha
        self._grey, self._alpha = grey, alpha
        if self.strength <= 0 or prev_grey is None or prev_grey.shape != grey.shape or prev_alpha.shape != alpha.shape:
            return alpha
        flow = self.flow.calc(grey, prev_grey, None)  # grey(x) ~ prev_grey(x + flow(x))
        gh, gw = grey.shape
        warped = cv2.remap(prev_grey, self._grid(gh, gw) + flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        residual = cv2.GaussianBlur(np.abs(grey.astype(np.float32) - warped) * np.float32(1 / 255), (0, 0), 1.5)
        if float(residual.mean()) > self.cut:
            return alpha
        h, w = alpha.shape
        sx, sy = w / gw, h / gh
        full = cv2.resize(flow * np.float32([sx, sy]), (w, h), interpolation=cv2.INTER_LINEAR)
        full += self._grid(h, w)
        carried = cv2.remap(prev_alpha, full, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        weight = cv2.resize(self.strength * np.exp(-residual / self.motion), (w, h), interpolation=cv2.INTER_LINEAR)
        change = carried - alpha
        # Flicker is a small wobble; a large disagreement is motion the flow missed: keep the new alpha.
        out = alpha + weight * change * np.exp(-np.square(change / self.jump))
        self._alpha = out
        return out
