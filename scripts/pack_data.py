"""Pack a training pool into a folder small enough to carry to a GPU machine (default 30 MiB, which
with the repository (about 30 MiB, mostly the shipped weights) stays under a 64 MiB transfer).

    python scripts/pack_data.py --portraits ../shared/data/portraits --cutouts ../shared/data/cutouts \
        --backgrounds ../shared/data/backgrounds --trunk ../shared/models/movenet-lightning-trunk.onnx -o pack/

Images are re-encoded (JPEG, long side --side) and alphas kept as PNG, in the pool's own layout
(portraits/image + portraits/alpha, cutouts/, backgrounds/), taking an even spread of the pool until
the budget is used. The trunk file is copied as it is.
"""
import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np

from cramatte.train.data import find_cutouts, find_pairs


def _fit(img, side):
    scale = side / max(img.shape[:2])
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img


def _write(path: Path, img, ext: str, quality: int) -> Path:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 9]
    ok, buf = cv2.imencode(ext, img, params)
    path.write_bytes(buf.tobytes())
    return path


def fill(items, write, budget: float) -> tuple:
    """Write items (write returns the files made) in a seeded random order, so every source is
    represented, until `budget` bytes; the item that would pass it is removed. (count, bytes)."""
    used, count = 0, 0
    for i in np.random.default_rng(0).permutation(len(items)):
        paths = write(items[i])
        size = sum(p.stat().st_size for p in paths)
        if used + size > budget:
            for p in paths:
                p.unlink()
            return count, used
        used, count = used + size, count + 1
    return count, used


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--portraits", required=True)
    p.add_argument("--cutouts")
    p.add_argument("--backgrounds", required=True)
    p.add_argument("--trunk")
    p.add_argument("-o", "--out", required=True, type=Path)
    p.add_argument("--side", type=int, default=320)
    p.add_argument("--quality", type=int, default=85)
    p.add_argument("--max-mib", type=float, default=30)
    args = p.parse_args()
    budget = args.max_mib * 2 ** 20
    out = args.out
    for sub in ("portraits/image", "portraits/alpha", "cutouts", "backgrounds"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    used = 0
    if args.trunk:
        shutil.copy(args.trunk, out / Path(args.trunk).name)
        used += Path(args.trunk).stat().st_size
    for path in find_cutouts(args.cutouts) if args.cutouts else []:
        used += _write(out / "cutouts" / f"{path.stem}.png", cv2.imread(str(path), cv2.IMREAD_UNCHANGED), ".png",
                       0).stat().st_size

    def portrait(pair):
        image, alpha = pair
        img = _fit(cv2.imread(str(image)), args.side)
        a = cv2.resize(cv2.imread(str(alpha), cv2.IMREAD_GRAYSCALE), img.shape[1::-1], interpolation=cv2.INTER_AREA)
        return [_write(out / "portraits" / "image" / f"{image.stem}.jpg", img, ".jpg", args.quality),
                _write(out / "portraits" / "alpha" / f"{image.stem}.png", a, ".png", 0)]

    def background(path):
        return [_write(out / "backgrounds" / f"{path.stem}.jpg", _fit(cv2.imread(str(path)), args.side), ".jpg",
                       args.quality)]

    pairs = find_pairs(args.portraits)
    bgs = sorted(q for q in Path(args.backgrounds).iterdir() if q.suffix.lower() in (".jpg", ".jpeg", ".png"))
    kept, size = fill(pairs, portrait, 0.8 * (budget - used))
    used += size
    n_bg, size = fill(bgs, background, budget - used)
    used += size
    print(f"{out}: {kept} of {len(pairs)} portraits, {n_bg} of {len(bgs)} backgrounds, {used / 2 ** 20:.1f} MiB")


if __name__ == "__main__":
    main()
