"""Matting metrics, alpha in [0, 1]. Scales: SAD /1000; MSE and MAD x1e3; Grad /1000 with Gaussian
first-derivative filters of sigma 1.4 (scipy.ndimage.gaussian_filter, order 1); Conn /1000
(Rhemann et al., thresholds 0..1 step 0.1); dtSSD x1e2. Each takes an optional mask (e.g. unknown)."""
import cv2
import numpy as np
from scipy import ndimage


def trimap_from_alpha(alpha: np.ndarray, kernel: int = 7) -> np.ndarray:
    """0 background / 1 unknown / 2 foreground: unknown = dilate(alpha > 0.01) - erode(alpha >= 0.99)."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kernel, kernel))
    fg = cv2.erode((alpha >= 0.99).astype(np.uint8), k)
    some = cv2.dilate((alpha > 0.01).astype(np.uint8), k)
    return (some + fg).astype(np.int64)


def _mask(pred, mask):
    return np.ones(pred.shape, bool) if mask is None else mask.astype(bool)


def sad(pred, gt, mask=None):
    return float(np.abs(pred - gt)[_mask(pred, mask)].sum() / 1000)


def mse(pred, gt, mask=None):
    m = _mask(pred, mask)
    return float(((pred - gt) ** 2)[m].mean() * 1e3) if m.any() else 0.0


def mad(pred, gt, mask=None):
    m = _mask(pred, mask)
    return float(np.abs(pred - gt)[m].mean() * 1e3) if m.any() else 0.0


def _gradient(a):
    a = a.astype(np.float64)
    return np.hypot(ndimage.gaussian_filter(a, 1.4, order=(0, 1)), ndimage.gaussian_filter(a, 1.4, order=(1, 0)))


def grad(pred, gt, mask=None):
    return float(((_gradient(pred) - _gradient(gt)) ** 2)[_mask(pred, mask)].sum() / 1000)


def conn(pred, gt, mask=None, step: float = 0.1):
    """Connectivity error: where each pixel stops being 8-connected to the main body of both mattes."""
    thresholds = np.arange(0, 1 + step / 2, step)
    level = np.full(pred.shape, -1.0)
    for i in range(1, len(thresholds)):
        both = (pred >= thresholds[i]) & (gt >= thresholds[i])
        labels, n = ndimage.label(both, structure=np.ones((3, 3)))
        omega = np.zeros(pred.shape, bool)
        if n:
            sizes = np.bincount(labels.ravel())[1:]
            omega = labels == (np.argmax(sizes) + 1)
        level[(level == -1) & ~omega] = thresholds[i - 1]
    level[level == -1] = 1
    d_pred, d_gt = pred - level, gt - level
    phi_pred = 1 - d_pred * (d_pred >= 0.15)
    phi_gt = 1 - d_gt * (d_gt >= 0.15)
    return float(np.abs(phi_pred - phi_gt)[_mask(pred, mask)].sum() / 1000)


def iou(pred, gt, threshold: float = 0.5):
    p, g = pred >= threshold, gt >= threshold
    union = (p | g).sum()
    return float((p & g).sum() / union) if union else 1.0


def far_alpha(pred, gt, margin: float = 0.1) -> float:
    """Haze: mean predicted alpha (x1e3) over the pixels farther than `margin` of the frame's short side
    from anything the truth keeps (alpha > 0.01); NaN when the truth leaves no such pixel."""
    empty = (gt <= 0.01).astype(np.uint8)
    far = cv2.distanceTransform(empty, cv2.DIST_L2, 5) > margin * min(gt.shape)
    return float(pred[far].mean() * 1e3) if far.any() else float("nan")


def dtssd(preds, gts):
    """Temporal coherence of a sequence [T, H, W]: mean over t of sqrt(mean((dp_t - dg_t)^2)) x1e2."""
    preds, gts = np.asarray(preds, np.float64), np.asarray(gts, np.float64)
    if len(preds) < 2:
        return 0.0
    d = np.diff(preds, axis=0) - np.diff(gts, axis=0)
    return float(np.sqrt((d ** 2).mean(axis=(1, 2))).mean() * 1e2)


METRICS = {"sad": sad, "mse": mse, "mad": mad, "grad": grad, "conn": conn}


def all_metrics(pred, gt, unknown_kernel: int = 15) -> dict:
    """Every metric over the whole frame, the same over the unknown region (suffix _u), and IoU."""
    unknown = trimap_from_alpha(gt, unknown_kernel) == 1
    out = {name: fn(pred, gt) for name, fn in METRICS.items()}
    out.update({f"{name}_u": fn(pred, gt, unknown) for name, fn in METRICS.items()})
    out["iou"] = iou(pred, gt)
    return out
