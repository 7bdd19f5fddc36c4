"""Render-thread cost, matte latency and video delay of the Portrait Matte filter in real, headless OBS.

    python benchmarks/obs_render.py [--size 1280x720]

Starts OBS as the end-to-end test does (Xvfb, software GL, its own network namespace, 30 fps) with
the sample as an image source and a moving clip of --size as a media source. The filter runs on the
image first (the "balanced" preset), then on the clip (the "fast" preset), each in the default
frame-accurate timing and then in the lowest-latency one. Reports what the filter logs every 100
frames for each source size (time inside video_render; the newest matte's model time; the video
delay in frames), as distributions over those windows, and OBS's skipped render frames with the
filter against the baseline of the same run without it, and the CPU cores OBS and the model's process
use in each phase. Needs obs-studio, Xvfb and unshare.
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from memory import write_clip  # noqa: E402
from test_obs_real import E2E, write_config  # noqa: E402

LINE = re.compile(r"render thread \((\d+x\d+)\): median ([\d.]+) ms, max ([\d.]+) ms per frame, matte (\d+) ms"
                  r"(?:, video delay (\d+) frames \((\d+) ms\))?")


def spread(values) -> str:
    v = np.asarray(values, float)
    return f"{v.min():.0f} / {np.median(v):.0f} / {v.max():.0f}" if v.size else "none"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="1280x720", help="the moving clip's size")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        home, results = Path(tmp) / "home", Path(tmp) / "results"
        home.mkdir()
        results.mkdir()
        clip = results / "clip.mp4"
        write_clip(clip, 300, w, h)
        write_config(home, Path(sys.prefix), clip)
        subprocess.run(["unshare", "-n", str(E2E / "start_obs.sh"), str(home), sys.executable,
                        str(E2E / "client.py"), str(results)], check=True, timeout=400)
        data = json.loads((results / "results.json").read_text())
        log = (results / "obs.log").read_text(errors="replace")
    if not data.get("ok"):
        sys.exit(f"OBS run failed: {data}")
    by_size: dict = {}
    for size, median, peak, matte, delay, delay_ms in LINE.findall(log):
        by_size.setdefault(size, []).append((float(median), float(peak), float(matte), delay, delay_ms))
    for size, rows in by_size.items():
        print(f"{size}: {len(rows)} windows of 100 frames")
        print(f"  render thread per frame, median of windows {np.median([r[0] for r in rows]):.2f} ms, "
              f"largest window max {max(r[1] for r in rows):.1f} ms")
        print(f"  matte model time min / median / max over windows: {spread([r[2] for r in rows])} ms")
        delays = [(int(r[3]), int(r[4])) for r in rows if r[3]]
        print(f"  video delay (frame-accurate timing) min / median / max: {spread([d for d, _ in delays])} frames, "
              f"{spread([m for _, m in delays])} ms")
    print(f"skipped render frames over 4 s: {data['render_skipped']}/{data['render_frames']} with the filter, "
          f"{data['baseline_skipped']}/{data['baseline_frames']} without (same run)")
    print(f"CPU cores used, OBS / the model's process: {data['baseline_cpu']['obs']:.2f} / - without the filter, "
          f"{data['render_cpu']['obs']:.2f} / {data['render_cpu']['model']:.2f} with it on the image")
    print(f"  the clip playing, no filter: OBS {data['clip_cpu']['obs']:.2f}, skipped {data['clip_skipped']} in 3 s")
    for key in [k for k in data if k.startswith("motion_cpu_")]:
        print(f"  on the clip, {key[len('motion_cpu_'):]} timing: {data[key]['obs']:.2f} / {data[key]['model']:.2f}")


if __name__ == "__main__":
    main()
