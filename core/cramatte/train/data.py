"""Matting training data: common folder layouts, foreground estimation, compositing and augmentation."""
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..metrics import trimap_from_alpha
from . import augment

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
# (image folder, alpha folder) pairs of known layouts: our pool and dev set, PPM-100, P3M-10k, AM-2k.
LAYOUTS = [("image", "alpha"), ("image", "matte"), ("blurred_image", "mask"), ("original_image", "mask"),
           ("original", "mask")]


def _images(folder: Path) -> dict:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTS}


def find_pairs(root) -> list:
    """(image, alpha) path pairs under `root`, matched by file stem, in any known layout."""
    root = Path(root)
    for image_dir, alpha_dir in LAYOUTS:
        if (root / image_dir).is_dir() and (root / alpha_dir).is_dir():
            images, alphas = _images(root / image_dir), _images(root / alpha_dir)
            pairs = [(images[s], alphas[s]) for s in images if s in alphas]
            if pairs:
                return pairs
    return []


def find_cutouts(root) -> list:
    """RGBA images directly under `root` (files with an alpha channel)."""
    root = Path(root)
    return [p for p in _images(root).values() if p.suffix.lower() in {".png", ".webp", ".tif", ".tiff"}]


def read_rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_alpha(path) -> np.ndarray:
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise ValueError(f"cannot read alpha {path}")
    if a.ndim == 3:
        a = a[..., -1] if a.shape[2] == 4 else a[..., 0]
    return a.astype(np.float32) / np.iinfo(a.dtype).max


def read_cutout(path):
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 4:
        raise ValueError(f"{path} is not an RGBA image")
    scale = np.iinfo(img.dtype).max
    return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB), img[..., 3].astype(np.float32) / scale


class MattingData(Dataset):
    """Training samples of `size` x `size`, index-addressed and deterministic for a given seed.

    Each sample is either a labelled photo with its own background (`real_prob`) or a foreground
    (photo + alpha, or RGBA cut-out) composited on a random background, then augmented. A photo kept
    real is shown whole and smaller (`zoom_prob`) or as a crop at 1-1.4x.
    """

    def __init__(self, pairs, cutouts, backgrounds, size: int = 320, real_prob: float = 0.3,
                 cutout_prob: float = 0.15, seed: int = 0, max_side: int = 640, zoom_prob: float = 0.0):
        if not pairs and not cutouts:
            raise ValueError("no training data: found neither image/alpha pairs nor RGBA cut-outs")
        self.pairs, self.cutouts, self.backgrounds = list(pairs), list(cutouts), list(backgrounds)
        self.size, self.real_prob, self.seed, self.max_side = size, real_prob, seed, max_side
        self.zoom_prob = zoom_prob
        self.cutout_prob = cutout_prob if self.cutouts else 0.0
        if not self.pairs:
            self.cutout_prob = 1.0
        if not self.backgrounds:
            self.real_prob = 1.0

    def __len__(self):
        return 1 << 40

    def _foreground(self, rng):
        """(rgb, alpha, is_cutout) of a random labelled photo or cut-out, at most max_side pixels."""
        if rng.random() < self.cutout_prob:
            rgb, alpha = read_cutout(self.cutouts[rng.integers(len(self.cutouts))])
            cutout = True
        else:
            image_path, alpha_path = self.pairs[rng.integers(len(self.pairs))]
            rgb, alpha = read_rgb(image_path), read_alpha(alpha_path)
            cutout = False
            if alpha.shape != rgb.shape[:2]:
                alpha = cv2.resize(alpha, rgb.shape[1::-1], interpolation=cv2.INTER_LINEAR)
        scale = self.max_side / max(rgb.shape[:2])
        if scale < 1:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(alpha, rgb.shape[1::-1], interpolation=cv2.INTER_AREA)
        return rgb.astype(np.float32) / 255, np.clip(alpha, 0, 1), cutout

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        rgb, alpha, cutout = self._foreground(rng)
        real = not cutout and rng.random() < self.real_prob
        fg = rgb if real else augment.estimate_foreground(rgb, alpha)
        zoom = real and rng.random() < self.zoom_prob
        fg, alpha, rgb = augment.geometric(rng, [fg, alpha, rgb], self.size, cover=not cutout, fill_last=not real,
                                           zoom_out=zoom)
        if real:
            image, bg = rgb, rgb
        else:
            bg = augment.background(rng, read_rgb(self.backgrounds[rng.integers(len(self.backgrounds))]),
                                    self.size)
            fg = augment.colour(rng, fg)
            image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
        image = augment.camera(rng, image)
        chw = lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))
        return {"image": chw(image), "fg": chw(fg), "bg": chw(bg), "alpha": torch.from_numpy(alpha[None].copy()),
                "trimap": torch.from_numpy(trimap_from_alpha(alpha)), "composite": torch.tensor(float(not real))}


class ResumableSampler(Sampler):
    """Yields consecutive sample indices from `start`, so a resumed run sees exactly the next samples."""

    def __init__(self, start: int = 0):
        self.start = start

    def __iter__(self):
        i = self.start
        while True:
            yield i
            i += 1
