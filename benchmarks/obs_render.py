"""Render-thread cost per frame and matte latency of the Portrait Matte filter in real, headless OBS.

    python benchmarks/obs_render.py

Starts OBS (as the end-to-end test does: Xvfb, software GL, its own network namespace) with the
sample as an image source at 30 fps, adds the filter, and reports what the filter logs every 100
frames (median and max time inside video_render, newest matte's model time) plus OBS's skipped
render frames with and without the filter. Needs obs-studio, Xvfb and unshare.
"""
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_obs_real import E2E, write_config  # noqa: E402


def main():
    with tempfile.TemporaryDirectory() as tmp:
        home, results = Path(tmp) / "home", Path(tmp) / "results"
        home.mkdir()
        results.mkdir()
        write_config(home, Path(sys.prefix))
        subprocess.run(["unshare", "-n", str(E2E / "start_obs.sh"), str(home), sys.executable,
                        str(E2E / "client.py"), str(results)], check=True, timeout=400)
        data = json.loads((results / "results.json").read_text())
        log = (results / "obs.log").read_text(errors="replace")
    lines = re.findall(r"render thread: median ([\d.]+) ms, max ([\d.]+) ms per frame, matte (\d+) ms", log)
    if not data.get("ok") or not lines:
        sys.exit(f"OBS run failed: {data}")
    median = sorted(float(m) for m, _, _ in lines)[len(lines) // 2]
    print(f"render thread per frame: median {median:.2f} ms (max of any window {max(float(x) for _, x, _ in lines):.1f} ms)")
    print(f"matte latency (model time of the newest matte): {lines[-1][2]} ms")
    print(f"skipped render frames: {data['render_skipped']}/{data['render_frames']} with the filter, "
          f"{data['baseline_skipped']}/{data['baseline_frames']} without")


if __name__ == "__main__":
    main()
