"""`cramatte farm` on a real Ray cluster on this machine's loopback: a head node and a second node, one
CPU each. Ray is a test dependency: without it these tests fail, they never skip."""
import os
import re
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


def test_a_ray_client_server_that_dies_at_its_start_is_met_with_a_new_connection(cluster, tmp_path, monkeypatch,
                                                                                 capsys):
    """Ray Client's per-connection server dies at its start now and then (ray-project/ray#63202): the farm
    connects again, twice at most, and then fails in one error."""
    address, env = cluster
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
        monkeypatch.setenv(name, env[name])
    import ray
    from ray.util.client.worker import Worker

    import cramatte

    real, calls = Worker._server_init, []

    def dies_first(failures):
        def server_init(self, *args, **kw):
            calls.append(1)
            if len(calls) <= failures:
                raise ConnectionAbortedError("Initialization failure from server:\npsutil.ZombieProcess")
            return real(self, *args, **kw)
        return server_init

    cv2.imwrite(str(tmp_path / "c.png"), cv2.resize(cv2.imread(str(SAMPLE)), (96, 64)))
    client = cramatte.Cluster(address=f"ray://{address.split(':')[0]}:10001")
    monkeypatch.setattr(Worker, "_server_init", dies_first(1))
    report = cramatte.farm_files([tmp_path / "c.png"], tmp_path / "out", cluster=client, progress=False)
    # the real server may die at its start as well (CI met it once): one more connection then
    assert [p.name for p in report.written] == ["c_alpha.png"] and not report.failed and len(calls) in (2, 3)
    assert capsys.readouterr().err.count("connecting again") == len(calls) - 1 and not ray.is_initialized()
    calls.clear()
    monkeypatch.setattr(Worker, "_server_init", dies_first(9))
    with pytest.raises(ConnectionAbortedError, match="Initialization failure"):
        cramatte.farm_files([tmp_path / "c.png"], tmp_path / "again", cluster=client, progress=False)
    assert len(calls) == 3 and capsys.readouterr().err.count("connecting again") == 2 and not ray.is_initialized()


def _pids(pattern: str) -> set:
    res = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return {int(p) for p in res.stdout.split()}


def _wait_for(proc, ready) -> None:
    """Poll until `ready()` holds, while `proc` (the farm) still runs; a farm that gets nowhere in five
    minutes is stopped and fails the test."""
    deadline = time.time() + 300
    while proc.poll() is None and not ready():
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"the farm got nowhere: {proc.communicate()[0]}")
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0]


def _local(shots: Path, out: Path, *args) -> None:
    res = subprocess.run([sys.executable, "-m", "cramatte.cli", "matte", str(shots), "-o", str(out), *args],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _doomed_node(cluster, cpus: int) -> int:
    """Start one more node with `cpus` CPUs; returns its raylet's process id."""
    address, env = cluster
    raylets = _pids("raylet/raylet")
    subprocess.run([RAY, "start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus),
                    "--disable-usage-stats"], check=True, capture_output=True, env=env, timeout=180)
    return (_pids("raylet/raylet") - raylets).pop()


def _kill_node(raylet: int) -> None:
    """Kill a node as a power cut would: its raylet and everything it started (workers, agents)."""
    for pid in (*_children(raylet), raylet):
        os.kill(pid, signal.SIGKILL)


def test_a_lost_node_has_its_chunks_rescheduled(cluster, tmp_path):
    """A third node joins; its raylet and workers are killed mid-run (once hung the job for good): Ray
    reports the node dead, its chunks go to the workers left, and the job finishes whole."""
    doomed = _doomed_node(cluster, 1)
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in "abc":
        shot(shots / f"{name}.mp4", 16)
    _local(shots, tmp_path / "local", "--temporal", "0")
    proc = farm(cluster, shots, "-o", tmp_path / "farm", "--chunk", "4", "--temporal", "0")
    _wait_for(proc, lambda: _pids("ray::Worker") & _children(doomed) and list((tmp_path / "farm").glob(".*/*.png")))
    _kill_node(doomed)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    assert "3 workers" in out and tree(tmp_path / "farm") == tree(tmp_path / "local")
    assert not list((tmp_path / "farm").glob(".*"))


def _children(pid: int) -> set:
    res = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(p) for p in res.stdout.split()}


def test_chunks_no_node_is_left_to_take_fail_listed(cluster, tmp_path):
    """The only node big enough for a worker (2 CPUs) is lost mid-run: the chunks left fail, each
    listed with its frames, exit 2; the frames matted so far stay for a rerun."""
    doomed = _doomed_node(cluster, 2)
    shots = tmp_path / "shots"
    shots.mkdir()
    shot(shots / "a.mp4", 40)
    proc = farm(cluster, shots, "-o", tmp_path / "farm", "--chunk", "4", "--workers", "1", "--cpus-per-worker", "2")
    _wait_for(proc, lambda: list((tmp_path / "farm").glob(".*/*.png")))
    _kill_node(doomed)
    out = proc.communicate(timeout=600)[0]
    failures = [line for line in out.splitlines() if "not matted (every worker's node was lost)" in line]
    assert proc.returncode == 2 and failures and "a.mp4 frames " in failures[0], out
    assert list((tmp_path / "farm").glob(".a_alpha.farm-partial/*.png")) and not (tmp_path / "farm" / "a_alpha").exists()


def test_a_chunk_that_kills_its_worker_fails_alone(cluster, tmp_path):
    """--retries 0 and a worker killed mid-chunk: that chunk fails (exit 2) and only it; Ray replaces the
    worker for the chunks after it (a dead worker once failed every chunk sent to it), the throughput
    counts frames matted, and a rerun completes the shots."""
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in "abc":
        shot(shots / f"{name}.mp4", 16)
    _local(shots, tmp_path / "local", "--temporal", "0")
    args = (shots, "-o", tmp_path / "farm", "--chunk", "4", "--temporal", "0", "--retries", "0")
    proc = farm(cluster, *args)
    _wait_for(proc, lambda: _worker_pids() and list((tmp_path / "farm").glob(".*/*.png")))
    os.kill(_worker_pids()[0], signal.SIGKILL)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 2, out
    failures = [line for line in out.splitlines() if "not matted" in line]
    assert len(failures) == 1 and "its worker died (1 try)" in failures[0], out
    assert "44 frames matted" in out, out
    proc = farm(cluster, *args)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0 and "44 done already, 4 to do in 1 chunks" in out, out
    assert tree(tmp_path / "farm") == tree(tmp_path / "local") and not list((tmp_path / "farm").glob(".*"))


def test_a_rerun_with_other_options_refuses_to_mix(cluster, tmp_path):
    """A --depth 16 run killed halfway, rerun without --depth: refused (it once published 16- and 8-bit
    frames in one shot), naming the option; the same options resume; --overwrite starts afresh."""
    shots = tmp_path / "shots"
    shots.mkdir()
    shot(shots / "a.mp4", 40)
    out = tmp_path / "farm"
    proc = farm(cluster, shots, "-o", out, "--chunk", "4", "--depth", "16")
    _wait_for(proc, lambda: len(list(out.glob(".*/*.png"))) >= 4)
    proc.kill()
    proc.wait()
    proc = farm(cluster, shots, "-o", out, "--chunk", "4")
    said = proc.communicate(timeout=600)[0]
    assert proc.returncode == 2 and "cramatte: error:" in said and "Traceback" not in said, said
    assert "--depth 16" in said and "--depth 8" in said and str(out / "a_alpha") in said, said
    assert not (out / "a_alpha").exists()
    proc = farm(cluster, shots, "-o", out, "--chunk", "4", "--depth", "16")
    said = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, said
    assert {cv2.imread(str(p), cv2.IMREAD_UNCHANGED).dtype for p in (out / "a_alpha").iterdir()} == {np.dtype("uint16")}
    assert len(list((out / "a_alpha").iterdir())) == 40 and not list(out.glob(".*"))


@pytest.mark.parametrize("sig, code, said", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                             (signal.SIGINT, 130, "interrupted (Ctrl-C)")], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_farm_in_one_line_and_a_rerun_resumes(cluster, tmp_path, sig, code, said):
    """SIGTERM (a farm manager's) and Ctrl-C once gave a traceback: one line, 143 or 130; the rerun
    picks up the chunks that were whole."""
    shots = tmp_path / "shots"
    shots.mkdir()
    shot(shots / "a.mp4", 40)
    _local(shots, tmp_path / "local")
    out = tmp_path / "farm"
    proc = farm(cluster, shots, "-o", out, "--chunk", "4", "--overlap", "40")
    _wait_for(proc, lambda: len(list(out.glob(".*/*.png"))) >= 8)  # a chunk is whole (2 workers)
    proc.send_signal(sig)
    text = proc.communicate(timeout=600)[0]
    assert proc.returncode == code and "Traceback" not in text, text
    assert text.splitlines()[-1] == f"cramatte: {said}; rerun the same command to resume", text
    proc = farm(cluster, shots, "-o", out, "--chunk", "4", "--overlap", "40")
    text = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0 and re.search(r"frames: [1-9]\d* done already", text), text
    assert tree(out) == tree(tmp_path / "local") and not list(out.glob(".*"))
