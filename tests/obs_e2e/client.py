"""Drives a running OBS over obs-websocket (inside the test's network namespace) and writes what it
sees to RESULTS_DIR: screenshots as PNG and figures as results.json."""
import base64
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import obsws_python as obsws

SOURCE, FILTER = "Portrait", "Portrait Matte"
out = Path(sys.argv[1])


def connect(seconds=60):
    # obsws_python logs a traceback for every refused connection while OBS is still starting.
    logging.getLogger("obsws_python").setLevel(logging.CRITICAL)
    deadline = time.monotonic() + seconds
    while True:
        try:
            return obsws.ReqClient(host="127.0.0.1", port=4455, password="", timeout=10)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def shot(client, name):
    data = client.get_source_screenshot(SOURCE, "png", 512, 512, -1).image_data
    png = base64.b64decode(data.split(",", 1)[1])
    (out / f"{name}.png").write_bytes(png)
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def wait_for(client, name, ok, seconds=90):
    deadline = time.monotonic() + seconds
    while True:
        img = shot(client, name)
        if ok(img) or time.monotonic() > deadline:
            return img
        time.sleep(0.5)


def skipped(client):
    s = client.get_stats()
    return s.render_skipped_frames, s.render_total_frames


def cpu_seconds() -> dict:
    """CPU seconds used so far by OBS (started beside this client) and by the model's child processes."""
    def stat(pid):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # ppid, time
    procs = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                procs[int(entry.name)] = (*stat(entry.name), (entry / "cmdline").read_bytes())
            except (OSError, IndexError):
                pass
    obs = [pid for pid, (ppid, _, cmd) in procs.items() if ppid == os.getppid() and cmd.startswith(b"obs")]
    model = [pid for pid, (ppid, _, cmd) in procs.items() if ppid in obs and b"cramatte.live_worker" in cmd]
    return {"obs": sum(procs[p][1] for p in obs), "model": sum(procs[p][1] for p in model)}


def cores_used(before: dict, seconds: float) -> dict:
    after = cpu_seconds()
    return {k: round((after[k] - before[k]) / seconds, 2) for k in after}


def motion(client):
    """The moving clip: the filter moves from the portrait to it (fast preset), then screenshots in
    each timing mode for the test to score."""
    env = {**os.environ, "OBS_WEBSOCKET_PASSWORD": ""}
    run = lambda *a: subprocess.run([sys.executable, "-m", "cramatte.cli", "obs", *a], capture_output=True,
                                    text=True, env=env, check=True)
    run("remove", "--source", SOURCE)
    # The clip plays only from here: hidden, it left the skipped-frames windows to the image alone.
    client.set_scene_item_enabled("Scene", client.get_scene_item_id("Scene", "Clip").scene_item_id, True)
    time.sleep(1)
    s0, t0, cpu = *skipped(client), cpu_seconds()
    time.sleep(3)
    s1, t1 = skipped(client)
    results["clip_cpu"], results["clip_skipped"] = cores_used(cpu, 3), f"{s1 - s0}/{t1 - t0}"
    run("add", "--source", "Clip", "--set", "device=cpu", "preset=fast", "smoothing=0.0", "feather=0.0")
    shots = lambda: base64.b64decode(client.get_source_screenshot("Clip", "png", 512, 384, -1).image_data.split(",", 1)[1])
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        img = cv2.imdecode(np.frombuffer(shots(), np.uint8), cv2.IMREAD_UNCHANGED)
        if img.shape[2] == 4 and img[..., 3].min() < 20:
            break
        time.sleep(0.3)
    for timing, every in (("frame", 1), ("latency", 1), ("frame", 2)):
        client.set_source_filter_settings("Clip", FILTER, {"sync": timing, "every": every}, overlay=True)
        timing += "" if every == 1 else f"-every{every}"
        time.sleep(3)  # the delay estimate settles
        cpu, start = cpu_seconds(), time.monotonic()
        for i in range(16):
            (out / f"motion_{timing}_{i:02d}.png").write_bytes(shots())
            time.sleep(0.23)
        results[f"motion_cpu_{timing}"] = cores_used(cpu, time.monotonic() - start)
        if timing == "frame":
            props = client.send("GetSourceFilter", {"sourceName": "Clip", "filterName": FILTER}, raw=True)
            results["motion_filter"] = props.get("filterSettings", {})
    results["motion_delay_frames"] = delay_from_log()


def delay_from_log():
    """The filter logs its render-thread figures and the video delay every 100 frames."""
    import glob
    import re

    logs = sorted(glob.glob(os.path.expanduser("~/.config/obs-studio/logs/*.txt")))
    found = re.findall(r"video delay (\d+) frames", Path(logs[-1]).read_text(errors="replace")) if logs else []
    return int(found[-1]) if found else -1


results = {}
try:
    client = connect()
    before = shot(client, "before")
    results["before_alpha_min"] = int(before[..., 3].min())
    s0, t0, cpu = *skipped(client), cpu_seconds()
    time.sleep(4)
    s1, t1 = skipped(client)
    results["baseline_frames"], results["baseline_skipped"] = t1 - t0, s1 - s0
    results["baseline_cpu"] = cores_used(cpu, 4)
    add = subprocess.run([sys.executable, "-m", "cramatte.cli", "obs", "add", "--source", SOURCE, "--set",
                          "device=cpu", "smoothing=0.0", "feather=0.0"], capture_output=True, text=True,
                         env={**os.environ, "OBS_WEBSOCKET_PASSWORD": ""})
    results["cli_add"] = add.returncode
    if add.returncode:
        raise RuntimeError(f"cramatte obs add failed: {add.stderr}")
    matte = wait_for(client, "transparent", lambda im: im.shape[2] == 4 and im[..., 3].min() < 20)
    s0, t0, cpu = *skipped(client), cpu_seconds()
    time.sleep(4)
    s1, t1 = skipped(client)
    results["render_frames"], results["render_skipped"] = t1 - t0, s1 - s0
    results["render_cpu"] = cores_used(cpu, 4)
    client.set_source_filter_settings(SOURCE, FILTER, {"background": "blur", "blur": 30.0}, overlay=True)
    wait_for(client, "blur", lambda im: im[..., 3].min() > 235, 30)
    client.set_source_filter_settings(SOURCE, FILTER, {"show_matte": True}, overlay=True)
    wait_for(client, "show_matte", lambda im: np.abs(im[..., 0].astype(int) - im[..., 2]).max() < 3
             and im[..., 3].min() > 235, 30)
    motion(client)
    results["ok"] = True
except Exception as e:
    results["error"] = f"{type(e).__name__}: {e}"
(out / "results.json").write_text(json.dumps(results))
