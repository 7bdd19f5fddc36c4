"""The README's farm commands, run as written: on one machine, then a two-node cluster with token
authentication, reached with --address auto and through Ray Client. They run in namespaces of their
own (network: only the loopback, so Ray's nodes are 127.0.0.1 on its default ports; processes: `ray
stop` stops only these, and nothing outlives the test)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

from conftest import ROOT, SAMPLE
from test_farm import shot


def readme_farm_commands() -> str:
    section = (ROOT / "README.md").read_text().split("## Many shots on a cluster")[1].split("\n## ")[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the farm section has one block of commands"
    return blocks[0]


def test_the_readme_farm_commands_run_as_written(tmp_path):
    for folder in ("shots", "plates", "more"):
        (tmp_path / folder).mkdir()
    shot(tmp_path / "shots" / "a.mov", 6)
    shot(tmp_path / "shots" / "c.mp4", 5)
    small = cv2.resize(cv2.imread(str(SAMPLE)), (96, 64))
    cv2.imwrite(str(tmp_path / "plates" / "b.png"), small)
    cv2.imwrite(str(tmp_path / "more" / "d.jpg"), small)
    (tmp_path / "shots.txt").write_text("# one input per line\nmore/\n")
    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "RAY_TMPDIR": ray_tmp,
           "HEAD": "127.0.0.1", "PYTHONPATH": os.pathsep.join([str(ROOT / "core"), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_AUTH_MODE", None), env.pop("RAY_AUTH_TOKEN", None)
    script = "set -euxo pipefail\nip link set lo up\n" + readme_farm_commands()
    try:
        res = subprocess.run(["unshare", "--map-root-user", "--net", "--pid", "--fork", "--mount-proc", "bash", "-c",
                              script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        # Ray's client-server logs, for a failure's report (once, a ray:// server died at its start)
        ray_logs = "".join(f"\n== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                           for p in sorted(Path(ray_tmp).glob("session_latest/logs/ray_client_server*")))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-5000:] + ray_logs
    mattes = tmp_path / "mattes"
    assert sorted(p.name for p in mattes.iterdir()) == ["a_alpha", "b_alpha.png", "c_alpha", "d_alpha.png"]
    assert len(list((mattes / "a_alpha").iterdir())) == 6 and len(list((mattes / "c_alpha").iterdir())) == 5
    plans = [line for line in res.stdout.splitlines() if " to do in " in line]  # each command did its part
    assert [p.split(" in ")[0] for p in plans] == ["2 shots, 7 frames: 0 done already, 7 to do",
                                                   "1 shots, 1 frames: 0 done already, 1 to do",
                                                   "2 shots, 11 frames: 6 done already, 5 to do"], res.stdout


def test_an_unreachable_cluster_is_one_line_and_leaves_nothing(tmp_path):
    shot(tmp_path / "a.mp4", 3)
    res = subprocess.run([sys.executable, "-m", "cramatte.cli", "farm", str(tmp_path / "a.mp4"), "-o",
                          str(tmp_path / "out"), "--address", "ray://127.0.0.1:9"], capture_output=True, text=True,
                         timeout=600)
    said = [line for line in res.stderr.splitlines() if line.startswith("cramatte")]
    assert res.returncode == 2 and len(said) == 1 and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
