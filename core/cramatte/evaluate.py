"""`cramatte eval`: metrics over a matting set, a per-image CSV and a contact sheet to look at."""
import csv
import time
from pathlib import Path

import cv2
import numpy as np

from .metrics import all_metrics, far_alpha
from .temporal import STRENGTH
from .io import read_alpha
from .train.data import find_pairs

COLUMNS = ["sad", "mse", "mad", "grad", "conn", "iou", "sad_u", "mse_u", "mad_u", "grad_u", "conn_u", "soft", "soft_gt", "far"]


def soft_share(alpha: np.ndarray) -> float:
    """Share of pixels partly transparent (alpha strictly between 0.02 and 0.98)."""
    return float(np.mean((alpha > 0.02) & (alpha < 0.98)))


def by_source(rows: list) -> dict:
    """Mean MAD per source, the name's prefix before `__` (the pool's `<source>__<name>`), worst first."""
    groups = {}
    for r in rows:
        groups.setdefault(r["image"].split("__")[0] if "__" in r["image"] else "", []).append(r["mad"])
    means = {k: (float(np.mean(v)), len(v)) for k, v in groups.items() if k}
    return dict(sorted(means.items(), key=lambda kv: -kv[1][0]))


def _tile(images, height: int = 160) -> np.ndarray:
    row = []
    for img in images:
        img = img if img.ndim == 3 else np.repeat(img[..., None], 3, -1)
        row.append(cv2.resize(img, (int(img.shape[1] * height / img.shape[0]), height), interpolation=cv2.INTER_AREA))
    return np.concatenate(row, 1)


def contact_sheet(rows: list, path, width: int = 4 * 240) -> None:
    """rows of images (input RGB, truth, prediction, |error|, ...) float [0, 1] -> one PNG (none for no rows)."""
    if not rows:
        return
    tiles = [_tile(r) for r in rows]
    tiles = [cv2.resize(t, (width, int(t.shape[0] * width / t.shape[1]))) for t in tiles]
    sheet = (np.clip(np.concatenate(tiles, 0), 0, 1) * 255).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def edge_zoom(frame: np.ndarray, gt: np.ndarray, pred: np.ndarray, size: int = 64) -> list:
    """Crops (photo, truth, prediction) of `size` px around the worst error on the truth's edge."""
    h, w = gt.shape
    size = min(size, h, w)
    edge = cv2.dilate(((gt > 0.02) & (gt < 0.98)).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    err = cv2.blur(np.abs(pred - gt) * (edge if edge.any() else 1), (size // 2, size // 2))
    y, x = np.unravel_index(int(np.argmax(err)), err.shape)
    y0, x0 = int(np.clip(y - size // 2, 0, h - size)), int(np.clip(x - size // 2, 0, w - size))
    return [a[y0:y0 + size, x0:x0 + size] for a in (frame, gt, pred)]


def evaluate(data, out="runs/eval", model=None, config: str = "realtime", backend: str = "onnx",
             limit: int = 0, sheet_rows: int = 12, matter=None, worst: int = 10) -> dict:
    """Mean metrics over `data` (any layout `find_pairs` knows); writes metrics.csv, sheet.png (the first
    images) and worst.png (the `worst` highest-MAD images: photo, truth, prediction, |error|, and a zoom
    on the edge of each) to `out`."""
    from .frames import to_unit_float
    from .io import read_image
    from .runtime import Matter

    pairs = find_pairs(data)
    if not pairs:
        raise ValueError(f"no image/alpha pairs found in {data}")
    pairs = pairs[:limit] if limit else pairs
    matter = matter or Matter(model, config=config, backend=backend)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, sheet, seconds, worst_rows = [], [], 0.0, []
    for image_path, alpha_path in pairs:
        frame, space = read_image(image_path)
        gt = read_alpha(alpha_path)
        start = time.perf_counter()
        pred = matter(frame, colorspace=space).alpha
        seconds += time.perf_counter() - start
        m = {**all_metrics(pred, gt), "soft": soft_share(pred), "soft_gt": soft_share(gt),
             "far": far_alpha(pred, gt)}
        rows.append({"image": image_path.name, **{k: round(m[k], 5) for k in COLUMNS}})
        view = [to_unit_float(frame[None])[0], gt, pred, np.abs(pred - gt)]
        if len(sheet) < sheet_rows:
            sheet.append(view)
        worst_rows = sorted(worst_rows + [(m["mad"], len(rows), view + edge_zoom(*view[:3]))], reverse=True)[:worst]
    with (out / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image"] + COLUMNS)
        w.writeheader()
        w.writerows(rows)
    contact_sheet(sheet, out / "sheet.png")
    contact_sheet([r[2] for r in worst_rows], out / "worst.png", width=7 * 200)
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in COLUMNS}  # far: NaN where nothing is far
    mean["s_per_image"] = seconds / len(rows)
    print(f"{len(rows)} images, {matter.config.name}, {matter.backend.name} on {matter.backend.device}")
    print("        " + " ".join(f"{k:>8}" for k in ("SAD", "MSE", "MAD", "Grad", "Conn", "IoU")))
    print("whole   " + " ".join(f"{mean[k]:8.3f}" for k in ("sad", "mse", "mad", "grad", "conn", "iou")))
    print("unknown " + " ".join(f"{mean[k + '_u']:8.3f}" for k in ("sad", "mse", "mad", "grad", "conn")))
    print(f"partly transparent pixels: {100 * mean['soft']:.1f}% (the truth's: {100 * mean['soft_gt']:.1f}%)")
    print(f"haze: mean alpha far from the subject {mean['far']:.2f} (x1e3; 0 is clean)")
    mean["sources"] = by_source(rows)
    if mean["sources"]:
        print("MAD by source: " + ", ".join(f"{k} {m:.1f} ({n})" for k, (m, n) in mean["sources"].items()))
    print(f"{mean['s_per_image']:.3f} s per image; per-image CSV and contact sheet in {out}")
    return mean


def evaluate_video(data, model=None, config: str = "realtime", backend: str = "onnx", strength: float = STRENGTH,
                   matter=None) -> dict:
    """dtSSD and MAD of every clip under `data` (one sub-folder per clip, frames in a `find_pairs`
    layout, in name order), per-frame and in video mode. Returns the means over clips."""
    from .io import read_image
    from .metrics import dtssd, mad
    from .runtime import Matter, VideoMatter

    clips = [d for d in sorted(Path(data).iterdir()) if d.is_dir() and find_pairs(d)]
    if not clips:
        raise ValueError(f"no clips (sub-folders with image/alpha frames) found in {data}")
    matter = matter or Matter(model, config=config, backend=backend)
    scores = {"per-frame": [], "video mode": []}
    for clip in clips:
        video = VideoMatter(matter, strength=strength)
        truth, preds = [], {"per-frame": [], "video mode": []}
        for image_path, alpha_path in find_pairs(clip):
            frame, space = read_image(image_path)
            truth.append(read_alpha(alpha_path))
            preds["per-frame"].append(matter(frame, colorspace=space).alpha)
            preds["video mode"].append(video(frame, colorspace=space).alpha)
        for mode, pred in preds.items():
            scores[mode].append((dtssd(pred, truth), float(np.mean([mad(p, g) for p, g in zip(pred, truth)]))))
    print(f"{len(clips)} clips, {matter.config.name}; dtSSD x1e2, MAD x1e3")
    out = {}
    for mode, rows in scores.items():
        out[mode] = {"dtssd": float(np.mean([r[0] for r in rows])), "mad": float(np.mean([r[1] for r in rows]))}
        print(f"{mode:11} dtSSD {out[mode]['dtssd']:8.3f}   MAD {out[mode]['mad']:8.3f}")
    return out
