"""Contact sheets of the training photos where the model and the teacher disagree most, to find
broken teacher labels by eye.

    python scripts/label_sheets.py ../shared/data/portraits --worst 300 -o runs/sheets

Scores every photo (MAD x1e3 of the shipped model, realtime, against its label) into OUT/mad.csv, or
reuses the one there. Each row: rank and name, the photo, the teacher's alpha, the model's alpha, the photo cut out by the
teacher's alpha over grey. Sheets of --rows rows. The model's alpha comes from the shipped model.
"""
import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from cramatte import Matter
from cramatte.evaluate import contact_sheet
from cramatte.io import read_alpha, read_rgb
from cramatte.metrics import mad
from cramatte.train.data import find_pairs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a set of photos with labels (image/ and alpha/, or another known layout)")
    p.add_argument("--worst", type=int, default=300)
    p.add_argument("--rows", type=int, default=25)
    p.add_argument("-o", "--out", required=True)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    matter = Matter()
    pairs = find_pairs(args.data)
    if (out / "mad.csv").exists():  # scored already: only the sheets again
        with open(out / "mad.csv") as f:
            known = {r["name"]: float(r["mad"]) for r in csv.DictReader(f)}
        scores = [(known[image.stem], image, alpha) for image, alpha in pairs]
    else:
        scores = [(mad(matter(read_rgb(image)).alpha, read_alpha(alpha)), image, alpha) for image, alpha in pairs]
    scores.sort(key=lambda s: -s[0])
    with open(out / "mad.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "mad"])
        w.writerows([(image.stem, round(m, 2)) for m, image, _ in scores])
    sheet = []
    for rank, (_, image, alpha) in enumerate(scores[:args.worst], 1):
        rgb = read_rgb(image).astype(np.float32) / 255
        teacher = read_alpha(alpha)
        model = matter(read_rgb(image)).alpha
        cut = teacher[..., None] * rgb + (1 - teacher[..., None]) * 0.5
        label = np.full((rgb.shape[0], rgb.shape[0] * 2, 3), 255, np.uint8)
        scale = rgb.shape[0] / 250
        cv2.putText(label, f"{rank}", (5, int(60 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 1.6 * scale, (0, 0, 0), 3)
        for i, part in enumerate([image.stem[j:j + 28] for j in range(0, len(image.stem), 28)][:4]):
            cv2.putText(label, part, (5, int((110 + 35 * i) * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale,
                        (0, 0, 0), 2)
        sheet.append([label.astype(np.float32) / 255, rgb, teacher, model, cut])
        if len(sheet) == args.rows or rank == min(args.worst, len(scores)):
            contact_sheet(sheet, out / f"worst_{rank - len(sheet) + 1:03d}-{rank:03d}.png", width=1400)
            sheet = []


if __name__ == "__main__":
    main()
