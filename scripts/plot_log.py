"""Draw a training log (runs/NAME/log.csv) as a loss curve PNG, with OpenCV only.

    python scripts/plot_log.py runs/rt1/log.csv -o docs/training_curve.png
"""
import argparse
import csv

import cv2
import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--smooth", type=int, default=50, help="moving-average window in steps")
    args = p.parse_args()
    with open(args.log) as f:
        rows = list(csv.DictReader(f))
    steps = np.array([int(r["step"]) for r in rows])
    w, h, m = 800, 400, 50
    img = np.full((h, w, 3), 255, np.uint8)
    series = {"total loss": ("loss", (40, 40, 200)), "full-res L1": ("l1", (200, 120, 0)),
              "trimap focal (1/4)": ("focal_s4", (0, 150, 0))}
    curves = {}
    for label, (key, colour) in series.items():
        y = np.array([float(r[key]) for r in rows if r.get(key)])
        k = min(args.smooth, len(y))
        curves[label] = (np.convolve(y, np.ones(k) / k, mode="valid"), colour)
    top = max(c.max() for c, _ in curves.values())
    cv2.rectangle(img, (m, m // 2), (w - m // 2, h - m), (0, 0, 0), 1)
    for i, (label, (y, colour)) in enumerate(curves.items()):
        xs = m + (steps[len(steps) - len(y):] - steps[0]) / max(1, steps[-1] - steps[0]) * (w - 1.5 * m)
        ys = h - m - y / top * (h - 1.5 * m)
        cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, colour, 2, cv2.LINE_AA)
        cv2.putText(img, label, (w - 260, 40 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)
    cv2.putText(img, f"step {steps[0]}..{steps[-1]} (moving average of {args.smooth}); max {top:.2f}",
                (m, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(args.out, img)


if __name__ == "__main__":
    main()
