"""Resident memory of `cramatte matte` on a long video: it must stay flat (frames are streamed).

    python benchmarks/memory.py [--frames 1800] [--size 1280x720]
    python benchmarks/memory.py --batch 1 8 64 [--size 1280x720]

Writes a synthetic clip (the sample portrait drifting over a moving background, H.264), mattes it in
video mode to ProRes 4444 with alpha in a child process, and samples the child's resident set size
every 0.25 s. Prints the RSS after 10%, 50% and 100% of the frames and the growth per 1,000 frames
over the second half; the peak for a single 4K frame is in `benchmarks/latency.py`'s table.

With --batch, one `Matter(frames)` call per batch size, each in a fresh process: peak RSS, and the peak
less the input and result arrays (N frames in, N alphas out), which must not grow with N.
"""
import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.png"


def write_clip(path: Path, frames: int, w: int, h: int) -> None:
    import av
    import cv2

    fg = cv2.resize(cv2.imread(str(SAMPLE))[..., ::-1], (h, h))
    rng = np.random.default_rng(0)
    bg = cv2.resize(rng.integers(0, 255, (h // 16, w // 8, 3), dtype=np.uint8), (2 * w, h), interpolation=cv2.INTER_CUBIC)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for t in range(frames):
            frame = np.ascontiguousarray(bg[:, (3 * t) % w:(3 * t) % w + w])
            x = int((w - h) / 2 + (w - h) / 3 * np.sin(t / 40))
            frame[:, x:x + h] = fg
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


BATCH_CHILD = """
import resource, sys, numpy as np
from cramatte import Matter
n, w, h = map(int, sys.argv[1:4])
matter = Matter(device="cpu")
matter(np.zeros((h, w, 3), np.uint8))
frames = np.random.default_rng(0).integers(0, 255, (n, h, w, 3), dtype=np.uint8)
alpha = matter(frames).alpha
arrays = (frames.nbytes + alpha.nbytes) / 2**20
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, arrays)
"""


def batch_memory(sizes: list, w: int, h: int) -> None:
    for n in sizes:
        out = subprocess.run([sys.executable, "-c", BATCH_CHILD, str(n), str(w), str(h)], capture_output=True,
                             text=True, check=True).stdout.split()
        peak, arrays = float(out[0]), float(out[1])
        print(f"batch of {n:3d} at {w}x{h}: peak RSS {peak:6.0f} MB; input + result {arrays:6.0f} MB; "
              f"the rest {peak - arrays:5.0f} MB")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=1800)
    p.add_argument("--size", default="1280x720")
    p.add_argument("--batch", type=int, nargs="+", help="instead: peak memory of one batch call per size")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    if args.batch:
        batch_memory(args.batch, w, h)
        return
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, args.frames, w, h)
        cmd = [sys.executable, "-m", "cramatte.cli", "matte", str(clip), "-o", tmp, "--output", "rgba",
               "--video-codec", "prores"]
        start = time.time()
        log = (Path(tmp) / "stderr.txt").open("w+")  # a file, not a pipe: the progress bar would fill a pipe
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True)
        samples = []
        while proc.poll() is None:
            try:
                samples.append((time.time() - start, rss_mb(proc.pid)))
            except (FileNotFoundError, ProcessLookupError):
                break
            time.sleep(0.25)
        proc.wait()
        log.seek(0)
        if proc.returncode:
            sys.exit(f"cramatte matte failed: {log.read()[-2000:]}")
        log.close()
        elapsed = time.time() - start
    t, rss = np.array(samples).T
    at = {f: float(np.interp(f * elapsed, t, rss)) for f in (0.1, 0.5, 1.0)}
    half = t >= elapsed / 2
    slope = np.polyfit(t[half], rss[half], 1)[0] * elapsed / args.frames * 1000 if half.sum() > 2 else 0.0
    print(f"{args.frames} frames of {w}x{h} in {elapsed:.0f} s ({args.frames / elapsed:.1f} fps, video mode, "
          f"ProRes 4444 out)")
    print(f"RSS after 10% {at[0.1]:.0f} MB, 50% {at[0.5]:.0f} MB, 100% {at[1.0]:.0f} MB; peak {rss.max():.0f} MB; "
          f"growth over the second half {slope:+.1f} MB per 1,000 frames")


if __name__ == "__main__":
    main()
