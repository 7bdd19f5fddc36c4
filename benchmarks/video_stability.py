"""Temporal stability on a synthetic clip with exact alpha: per-frame mattes vs video mode.

    python benchmarks/video_stability.py [--frames 48] [--config realtime]

The clip (cramatte.synthetic) moves the sample portrait, cut out by its own quality-configuration
matte (which is then the exact alpha of every frame), with camera shake over a panning background,
plus sensor noise. Prints dtSSD (x1e2) and MAD (x1e3) for both modes and their ratio, and the dtSSD
of a consistent error alone: frame 0's per-frame error carried exactly with the subject. dtSSD counts
that error's motion too, so no temporal filter gets below it; only a more accurate per-frame matte does.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from cramatte import Matter, VideoMatter
from cramatte.io import read_image
from cramatte.metrics import dtssd, mad
from cramatte.synthetic import make_clip
from cramatte.temporal import STRENGTH

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--config", default="realtime")
    p.add_argument("--strength", type=float, default=STRENGTH)
    args = p.parse_args()
    img = read_image(SAMPLE)[0][..., :3].astype(np.float32) / 255
    truth = Matter(config="quality")(img).alpha
    frames, alphas, offsets = make_clip(img, truth, frames=args.frames)
    matter = Matter(config=args.config)
    per_frame = np.stack([matter(f).alpha for f in frames])
    video = VideoMatter(matter, strength=args.strength)
    temporal = np.stack([video(f).alpha for f in frames])
    rows = {}
    for name, pred in (("per-frame", per_frame), ("video mode", temporal)):
        rows[name] = (dtssd(pred, alphas), float(np.mean([mad(a, g) for a, g in zip(pred, alphas)])))
        print(f"{name:11} dtSSD {rows[name][0]:7.3f}   MAD {rows[name][1]:7.3f}")
    # The floor no filter can go below: frame 0's per-frame error, carried exactly with the subject.
    h, w = truth.shape
    carried = [a + cv2.warpAffine(per_frame[0] - alphas[0], np.float32([[1, 0, dx], [0, 1, dy]]), (w, h))
               for a, (dx, dy) in zip(alphas, offsets - offsets[0])]
    print(f"consistent error alone (frame 0's error moving with the subject): dtSSD {dtssd(carried, alphas):7.3f}")
    print(f"video / per-frame: dtSSD x{rows['video mode'][0] / rows['per-frame'][0]:.2f}, "
          f"MAD x{rows['video mode'][1] / rows['per-frame'][1]:.2f} ({args.frames} frames of {img.shape[1]}x{img.shape[0]})")


if __name__ == "__main__":
    main()
