"""Temporal stability on a synthetic clip with exact alpha: per-frame mattes vs video mode.

    python benchmarks/video_stability.py [--frames 48] [--config realtime]

The clip (cramatte.synthetic) moves the sample portrait, cut out by its own quality-configuration
matte (which is then the exact alpha of every frame), with camera shake over a panning background,
plus sensor noise. Prints dtSSD (x1e2) and MAD (x1e3) for both modes and their ratio.
"""
import argparse
from pathlib import Path

import numpy as np

from cramatte import Matter, VideoMatter
from cramatte.io import read_image
from cramatte.metrics import dtssd, mad
from cramatte.synthetic import make_clip

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--config", default="realtime")
    p.add_argument("--strength", type=float, default=0.7)
    args = p.parse_args()
    img = read_image(SAMPLE)[0][..., :3].astype(np.float32) / 255
    truth = Matter(config="quality")(img).alpha
    frames, alphas = make_clip(img, truth, frames=args.frames)
    matter = Matter(config=args.config)
    per_frame = np.stack([matter(f).alpha for f in frames])
    video = VideoMatter(matter, strength=args.strength)
    temporal = np.stack([video(f).alpha for f in frames])
    rows = {}
    for name, pred in (("per-frame", per_frame), ("video mode", temporal)):
        rows[name] = (dtssd(pred, alphas), float(np.mean([mad(a, g) for a, g in zip(pred, alphas)])))
        print(f"{name:11} dtSSD {rows[name][0]:7.3f}   MAD {rows[name][1]:7.3f}")
    print(f"video / per-frame: dtSSD x{rows['video mode'][0] / rows['per-frame'][0]:.2f}, "
          f"MAD x{rows['video mode'][1] / rows['per-frame'][1]:.2f} ({args.frames} frames of {img.shape[1]}x{img.shape[0]})")


if __name__ == "__main__":
    main()
