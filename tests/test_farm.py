"""`cramatte farm` on a real Ray cluster on this machine's loopback: a head node and a second node, one
CPU each. Ray is a test dependency: without it these tests fail, they never skip."""
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import SAMPLE

RAY = str(Path(sys.executable).with_name("ray"))
PORT = "6391"


def shot(path: Path, frames: int, size=(96, 64)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    base = cv2.resize(cv2.imread(str(SAMPLE)), size)
    for i in range(frames):
        w.write(np.roll(base, 3 * i, axis=1))
    w.release()
    return path


def tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head and one more node, started with `ray start` as a studio would, stopped at the end."""
    temp = tmp_path_factory.mktemp("ray")
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    # token authentication, as Ray now defaults to, with a token of this test's own
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", PORT,
                    "--include-dashboard", "false", "--temp-dir", str(temp), *common],
                   check=True, capture_output=True, env=env, timeout=180)
    try:
        subprocess.run([RAY, "start", "--address", f"127.0.0.1:{PORT}", "--node-ip-address", "127.0.0.1", *common],
                       check=True, capture_output=True, env=env, timeout=180)
        yield f"127.0.0.1:{PORT}", env
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=120)


def farm(cluster, *args):
    address, env = cluster
    cmd = [sys.executable, "-m", "cramatte.cli", "farm", *map(str, args), "--address", address]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_farm_equals_matte_and_resumes(cluster, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    for name, frames in (("a", 9), ("b", 6)):
        shot(shots / f"{name}.mp4", frames)
    cv2.imwrite(str(shots / "c.png"), cv2.resize(cv2.imread(str(SAMPLE)), (96, 64)))
    local = subprocess.run([sys.executable, "-m", "cramatte.cli", "matte", str(shots), "-o", str(tmp_path / "local"),
                            "--output", "alpha", "rgba"], capture_output=True, text=True)
    assert local.returncode == 0, local.stderr
    proc = farm(cluster, shots, "-o", tmp_path / "farm", "--output", "alpha", "rgba")
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    assert "2 workers" in out and "3 shots, 16 frames" in out
    assert tree(tmp_path / "farm") == tree(tmp_path / "local")  # byte for byte, names included
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "farm").rglob("*")}
    proc = farm(cluster, shots, "-o", tmp_path / "farm", "--output", "alpha", "rgba")
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0 and "16 done already, 0 to do" in out, out
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "farm").rglob("*")} == before


def _worker_pids() -> list:
    res = subprocess.run(["pgrep", "-f", "ray::Worker"], capture_output=True, text=True)
    return [int(p) for p in res.stdout.split()]


def test_a_lost_worker_costs_only_its_chunk(cluster, tmp_path):
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in "abc":
        shot(shots / f"{name}.mp4", 16)
    local = subprocess.run([sys.executable, "-m", "cramatte.cli", "matte", str(shots), "-o", str(tmp_path / "local"),
                            "--temporal", "0"], capture_output=True, text=True)
    assert local.returncode == 0, local.stderr
    proc = farm(cluster, shots, "-o", tmp_path / "farm", "--chunk", "4", "--temporal", "0")
    deadline, killed = time.time() + 300, None
    while killed is None and time.time() < deadline and proc.poll() is None:
        partial = list((tmp_path / "farm").glob(".*.farm-partial/*.png"))
        pids = _worker_pids()
        if partial and pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
    out = proc.communicate(timeout=600)[0]
    assert killed is not None, f"no worker was running to kill: {out}"
    assert proc.returncode == 0, out
    assert tree(tmp_path / "farm") == tree(tmp_path / "local")  # every frame, as a local run writes it
    assert not list((tmp_path / "farm").glob(".*"))


def test_farm_files_from_python_equals_the_command(cluster, tmp_path, monkeypatch):
    """`cramatte.farm_files` writes what `cramatte farm` writes, reports what it prints, and leaves Ray as
    it found it (not connected)."""
    address, env = cluster
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):  # this process's driver authenticates as the nodes do
        monkeypatch.setenv(name, env[name])  # (set before Ray loads)
    import ray

    import cramatte

    shots = tmp_path / "shots"
    shots.mkdir()
    shot(shots / "a.mp4", 7)
    cv2.imwrite(str(shots / "c.png"), cv2.resize(cv2.imread(str(SAMPLE)), (96, 64)))
    (shots / "broken.png").write_bytes(b"\x89PNG garbage")
    proc = farm(cluster, shots, "-o", tmp_path / "cli", "--output", "alpha", "rgba")
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 2, out
    report = cramatte.farm_files(shots, tmp_path / "api", outputs=("alpha", "rgba"),
                                 cluster=cramatte.Cluster(address=address), progress=False)
    assert tree(tmp_path / "api") == tree(tmp_path / "cli")  # byte for byte, names included
    assert report.inputs == 3 and len(report.failed) == 1 and f"  {report.failed[0]}\n" in out
    assert "broken.png" in report.failed[0]
    assert sorted(p.name for p in report.written) == ["a_alpha", "a_rgba", "c_alpha.png", "c_rgba.png"]
    assert not ray.is_initialized()
    with pytest.raises(ValueError, match="image sequences"):
        cramatte.farm_files(shots, tmp_path / "api", video_codec="prores")
