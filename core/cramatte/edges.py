"""Edge controls of live mattes (the OBS filter's worker): shrink/grow the matte and feather it outwards."""
import cv2
import numpy as np


def adjust_edges(alpha: np.ndarray, grow: float = 0.0, feather: float = 0.0) -> np.ndarray:
    """alpha HxW float32 in [0, 1]. grow > 0 dilates, < 0 erodes (pixels); feather > 0 softens the edge
    outwards only: the blurred matte never drops below the original inside the subject."""
    out = np.ascontiguousarray(alpha, dtype=np.float32)
    radius = int(round(abs(grow)))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        out = cv2.dilate(out, kernel) if grow > 0 else cv2.erode(out, kernel)
    if feather > 0:
        out = np.maximum(out, cv2.GaussianBlur(out, (0, 0), feather))
    return np.clip(out, 0, 1)
