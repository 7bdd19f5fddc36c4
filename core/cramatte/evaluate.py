"""`cramatte eval`: metrics over a matting set, a per-image CSV and a contact sheet to look at."""
import csv
import time
from pathlib import Path

import cv2
import numpy as np

from .metrics import all_metrics
from .train.data import find_pairs, read_alpha

COLUMNS = ["sad", "mse", "mad", "grad", "conn", "iou", "sad_u", "mse_u", "mad_u", "grad_u", "conn_u"]


def _tile(images, height: int = 160) -> np.ndarray:
    row = []
    for img in images:
        img = img if img.ndim == 3 else np.repeat(img[..., None], 3, -1)
        row.append(cv2.resize(img, (int(img.shape[1] * height / img.shape[0]), height), interpolation=cv2.INTER_AREA))
    return np.concatenate(row, 1)


def contact_sheet(rows: list, path, width: int = 4 * 240) -> None:
    """rows of (input RGB, truth, prediction, |error|) float [0, 1] -> one PNG."""
    tiles = [_tile(r) for r in rows]
    tiles = [cv2.resize(t, (width, int(t.shape[0] * width / t.shape[1]))) for t in tiles]
    sheet = (np.clip(np.concatenate(tiles, 0), 0, 1) * 255).astype(np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def evaluate(data, out="runs/eval", model=None, config: str = "realtime", backend: str = "onnx",
             limit: int = 0, sheet_rows: int = 12, matter=None) -> dict:
    """Mean metrics over `data` (any layout `find_pairs` knows); writes metrics.csv and sheet.png to `out`."""
    from .io import read_image
    from .runtime import Matter

    pairs = find_pairs(data)
    if not pairs:
        raise ValueError(f"no image/alpha pairs found in {data}")
    pairs = pairs[:limit] if limit else pairs
    matter = matter or Matter(model, config=config, backend=backend)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, sheet, seconds = [], [], 0.0
    for image_path, alpha_path in pairs:
        frame, space = read_image(image_path)
        gt = read_alpha(alpha_path)
        start = time.perf_counter()
        pred = matter(frame, colorspace=space).alpha
        seconds += time.perf_counter() - start
        m = all_metrics(pred, gt)
        rows.append({"image": image_path.name, **{k: round(m[k], 5) for k in COLUMNS}})
        if len(sheet) < sheet_rows:
            rgb = frame[..., :3].astype(np.float32) / (255 if frame.dtype == np.uint8 else 1)
            sheet.append([rgb, gt, pred, np.abs(pred - gt)])
    with (out / "metrics.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image"] + COLUMNS)
        w.writeheader()
        w.writerows(rows)
    contact_sheet(sheet, out / "sheet.png")
    mean = {k: float(np.mean([r[k] for r in rows])) for k in COLUMNS}
    mean["s_per_image"] = seconds / len(rows)
    print(f"{len(rows)} images, {matter.config.name}, {matter.backend.name} on {matter.backend.device}")
    print("        " + " ".join(f"{k:>8}" for k in ("SAD", "MSE", "MAD", "Grad", "Conn", "IoU")))
    print("whole   " + " ".join(f"{mean[k]:8.3f}" for k in ("sad", "mse", "mad", "grad", "conn", "iou")))
    print("unknown " + " ".join(f"{mean[k + '_u']:8.3f}" for k in ("sad", "mse", "mad", "grad", "conn")))
    print(f"{mean['s_per_image']:.3f} s per image; per-image CSV and contact sheet in {out}")
    return mean
