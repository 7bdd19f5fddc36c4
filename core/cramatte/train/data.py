"""Matting training data: common folder layouts; crops composited and augmented, and whole frames."""
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate

from ..metrics import trimap_from_alpha
from ..model.configs import internal_size
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


class MattingData(Dataset):
    """Training samples of `size` x `size`, index-addressed and deterministic for a given seed.

    `photos` and `cutouts` are labelled items, `backgrounds` plain ones (`store.Store` or any sequence
    of its item dicts). Each sample is either a photo with its own background (`real_prob`) or a
    foreground (photo + alpha, or RGBA cut-out) composited on a random background, then augmented. A
    photo kept real is shown whole and smaller (`zoom_prob`) or as a crop at 1-1.4x. `exclude`: names
    of photos never used (`photos.names`: broken teacher labels). `hardness`: {name: error} of a recent
    scoring pass; photos are then drawn in proportion to the square root of their error (unscored ones
    at the median), so the hard ones come back more often.
    """

    def __init__(self, photos, cutouts, backgrounds, size: int = 320, real_prob: float = 0.3,
                 cutout_prob: float = 0.15, seed: int = 0, zoom_prob: float = 0.0, exclude=(), hardness=None):
        names = getattr(photos, "names", [None] * len(photos))
        exclude = set(exclude)
        self.photo_ids = [i for i, name in enumerate(names) if name not in exclude]
        self.photo_p = None
        if hardness:
            median = float(np.median(list(hardness.values())))
            w = np.sqrt(np.maximum([hardness.get(names[i], median) for i in self.photo_ids], 0) + 1e-6)
            self.photo_p = w / w.sum()
        if not self.photo_ids and not len(cutouts):
            raise ValueError("no training data: found neither image/alpha pairs nor RGBA cut-outs")
        self.photos, self.cutouts, self.backgrounds = photos, cutouts, backgrounds
        self.size, self.real_prob, self.seed, self.zoom_prob = size, real_prob, seed, zoom_prob
        self.cutout_prob = cutout_prob if len(cutouts) else 0.0
        if not self.photo_ids:
            self.cutout_prob = 1.0
        if not len(backgrounds):
            self.real_prob = 1.0

    def __len__(self):
        return 1 << 40

    def _foreground(self, rng):
        """(rgb, alpha, foreground colour, is_cutout), float32 in [0, 1], of a random photo or cut-out."""
        cutout = rng.random() < self.cutout_prob
        item = self.cutouts[rng.integers(len(self.cutouts))] if cutout else \
            self.photos[self._photo(rng)]
        unit = lambda a: a.astype(np.float32) * np.float32(1 / 255)
        return unit(item["rgb"]), unit(item["alpha"]), unit(item["fg"]), cutout

    def _photo(self, rng) -> int:
        if self.photo_p is None:
            return self.photo_ids[rng.integers(len(self.photo_ids))]
        return self.photo_ids[rng.choice(len(self.photo_ids), p=self.photo_p)]

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index])
        rgb, alpha, fg, cutout = self._foreground(rng)
        real = not cutout and rng.random() < self.real_prob
        fg = rgb if real else fg
        zoom = real and rng.random() < self.zoom_prob
        fg, alpha, rgb = augment.geometric(rng, [fg, alpha, rgb], self.size, cover=not cutout, fill_last=not real,
                                           zoom_out=zoom)
        if real:
            image, bg = rgb, rgb
        else:
            bg = augment.background(rng, self.backgrounds[rng.integers(len(self.backgrounds))]["rgb"], self.size)
            fg = augment.colour(rng, fg)
            image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
        image = augment.camera(rng, image)
        return {"image": _chw(image), "fg": _chw(fg), "bg": _chw(bg), "alpha": torch.from_numpy(alpha[None].copy()),
                "trimap": torch.from_numpy(trimap_from_alpha(alpha)), "composite": torch.tensor(float(not real))}

    def whole_frames(self, rng, n: int, internal: int) -> dict:
        """n photos whole, as the runtime resizes a frame for the low-res network (aspect kept, long side
        at `internal`, sides multiples of 32): one photo at random and others of the same input shape.
        Returns `image_lr` [n, 3, h, w] with its `alpha` and `trimap` at that size (coarse losses only)."""
        shapes = self._shapes(internal)
        first = self._photo(rng)
        same = [i for i in self.photo_ids if shapes[i] == shapes[first]]
        lh, lw = shapes[first]
        images, alphas = [], []
        for i in [first, *rng.choice(same, n - 1)]:
            item = self.photos[int(i)]
            rgb = augment.camera(rng, augment.colour(rng, item["rgb"].astype(np.float32) * np.float32(1 / 255)))
            image = cv2.resize(rgb, (lw, lh), interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(item["alpha"], (lw, lh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
            if rng.random() < 0.5:
                image, alpha = image[:, ::-1], alpha[:, ::-1]
            images.append(image)
            alphas.append(alpha)
        alpha = np.stack(alphas)
        return {"image_lr": torch.stack([_chw(a) for a in images]), "alpha": torch.from_numpy(alpha[:, None].copy()),
                "trimap": torch.from_numpy(np.stack([trimap_from_alpha(a) for a in alpha]))}

    def _shapes(self, internal: int) -> dict:
        """Each photo's low-res input shape at `internal` (from its own size), computed once."""
        if getattr(self, "_shape_cache", (None,))[0] != internal:
            self._shape_cache = (internal, {i: internal_size(*self.photos[i]["size"], internal) for i in self.photo_ids})
        return self._shape_cache[1]


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))


class Batches(Dataset):
    """Whole batches addressed by step (so a resumed run sees exactly the next ones): `batch` crops of
    `MattingData` or, with probability `whole_prob`, whole frames at the runtime's low-res input shape."""

    def __init__(self, data: MattingData, batch: int, whole_prob: float = 0.0, internal: int = 320):
        self.data, self.batch, self.whole_prob, self.internal = data, batch, whole_prob, internal

    def __len__(self):
        return 1 << 40

    def __getitem__(self, step: int) -> dict:
        if self.whole_prob:
            rng = np.random.default_rng([self.data.seed, step, 1])
            if rng.random() < self.whole_prob:
                return self.data.whole_frames(rng, self.batch, self.internal)
        return default_collate([self.data[step * self.batch + i] for i in range(self.batch)])


class ResumableSampler(Sampler):
    """Yields consecutive indices from `start`, so a resumed run sees exactly the next batches."""

    def __init__(self, start: int = 0):
        self.start = start

    def __iter__(self):
        i = self.start
        while True:
            yield i
            i += 1
