"""`cramatte farm` against plain `cramatte matte`: throughput, scheduling overhead, and chunk seams.

    python benchmarks/farm.py [--shots 3] [--frames 48] [--size 640x360] [--chunk 16] [--address ADDR]

1. Throughput: the same synthetic shots (the sample portrait over a panning background, lossless FFV1)
   matted by `cramatte matte` (all cores) and by `cramatte farm` with 1 and 2 workers of one CPU each,
   on a local Ray cluster (or the one at --address). Prints frames per second of each whole command
   (start-up included) and the farm's own figure and scheduling overhead per chunk.
2. Seams: one shot in video mode, whole and cut into chunks of --chunk frames with --overlap warm-up
   frames; dtSSD x1e2 against the exact alpha over the transitions that cross a seam and those that
   do not, and the largest difference between the chunked and the whole run at a seam frame.
"""
import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def write_shot(path: Path, frames: np.ndarray) -> None:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for f in frames:
            rgb = (np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def synthetic(n: int, w: int, h: int, seed: int):
    from cramatte import Matter
    from cramatte.synthetic import make_clip

    img = cv2.resize(cv2.imread(str(SAMPLE))[..., ::-1], (h, h)).astype(np.float32) / 255
    truth = Matter(config="quality")(img).alpha
    canvas, alpha = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
    x = (w - h) // 2
    canvas[:, x:x + h], alpha[:, x:x + h] = img, truth
    return make_clip(canvas, alpha, frames=n, seed=seed)[:2]


def timed(cmd: list) -> tuple:
    start = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{res.stdout[-1500:]}{res.stderr[-1500:]}")
    return time.perf_counter() - start, res.stdout


def throughput(args, shots: Path, total: int, work: Path) -> None:
    base = [sys.executable, "-m", "cramatte.cli"]
    seconds, _ = timed(base + ["matte", str(shots), "-o", str(work / "local")])
    print(f"cramatte matte           {total / seconds:6.2f} frames/s ({seconds:.1f} s for {total} frames)")
    for workers in (1, 2):
        cmd = base + ["farm", str(shots), "-o", str(work / f"farm{workers}"), "--workers", str(workers),
                      "--chunk", str(args.chunk)] + (["--address", args.address] if args.address else [])
        seconds, out = timed(cmd)
        inner = re.search(r"([\d.]+) frames/s; scheduling overhead (\d+) ms", out)
        print(f"cramatte farm, {workers} worker{'s' if workers > 1 else ' '} {total / seconds:6.2f} frames/s "
              f"({seconds:.1f} s with Ray start-up; {inner.group(1)} frames/s once workers are up, "
              f"{inner.group(2)} ms scheduling overhead per chunk of {args.chunk})")


def seams(args, frames: np.ndarray, alphas: np.ndarray) -> None:
    from cramatte import Matter, VideoMatter
    from cramatte.metrics import dtssd

    matter = Matter()
    uint8 = [(np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8) for f in frames]
    whole_video = VideoMatter(matter)
    whole = np.stack([whole_video(f).alpha for f in uint8])
    chunked = np.empty_like(whole)
    starts = list(range(0, len(uint8), args.chunk))
    for start in starts:  # what each farm chunk does: warm up on the frames before it, then write its own
        video = VideoMatter(matter)
        for i in range(max(0, start - args.overlap), min(start + args.chunk, len(uint8))):
            alpha = video(uint8[i]).alpha
            if i >= start:
                chunked[i] = alpha
    seam = starts[1:]
    inside = [t for t in range(1, len(uint8)) if t not in seam]

    def transitions(pred, ts):
        return np.mean([dtssd(pred[t - 1:t + 1], alphas[t - 1:t + 1]) for t in ts])

    print(f"seams: chunks of {args.chunk} frames, {args.overlap} warm-up frames, {len(seam)} seams in {len(uint8)} frames")
    print(f"  dtSSD x1e2 across seams {transitions(chunked, seam):.3f}, inside chunks {transitions(chunked, inside):.3f}; "
          f"whole shot at the same transitions {transitions(whole, seam):.3f} / {transitions(whole, inside):.3f}")
    print(f"  largest |chunked - whole| at a seam frame {max(np.abs(chunked[s] - whole[s]).max() for s in seam):.4f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--size", default="640x360")
    p.add_argument("--chunk", type=int, default=16)
    p.add_argument("--overlap", type=int, default=8)
    p.add_argument("--address", help="a running Ray cluster (default: a local one per farm command)")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "shots").mkdir()
        clips = [synthetic(args.frames, w, h, seed) for seed in range(args.shots)]
        for i, (frames, _) in enumerate(clips):
            write_shot(work / "shots" / f"shot{i}.mkv", frames)
        throughput(args, work / "shots", args.shots * args.frames, work)
        seams(args, *clips[0])


if __name__ == "__main__":
    main()
