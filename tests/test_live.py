"""LiveMatter: the model in a child process, newest frame wins, failures reported, never blocking."""
import subprocess
import sys
import time

import numpy as np
import pytest

from cramatte import Matter
from cramatte.live import LiveMatter


def wait(cond, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.005)
    return cond()


@pytest.fixture
def rgba(sample):
    return np.dstack([sample[:192, :256], np.full((192, 256), 255, np.uint8)])


def test_mattes_come_back_tagged_and_match_the_engine(rgba):
    live = LiveMatter({"config": "realtime", "device": "cpu"}, blur=10.0)
    try:
        for tag in (7, 8):
            live.submit(rgba, tag)
            assert wait(lambda: live.mattes() and live.mattes()[-1][0] == tag)
        (t1, a1, v1), (t2, a2, v2) = live.mattes()
        assert (t1, t2, v2) == (7, 8, v1 + 1) and a2.dtype == np.uint8 and a2.shape == (192, 256)
        ref = Matter(config="realtime", device="cpu")(np.ascontiguousarray(rgba[..., :3])).alpha
        assert np.abs(a1 / 255 - ref).max() <= 1 / 255 + 1e-6
        background, version = live.latest_background()
        assert background.shape[2] == 4 and background.shape[0] < 192 and version == v2
    finally:
        live.close()
    assert live.proc.returncode is not None  # the child is gone, not left behind


def test_bad_input_and_a_corrupt_model_are_reported(rgba, tmp_path):
    live = LiveMatter({"config": "realtime", "device": "cpu"})
    try:
        live.submit(np.zeros((8, 8, 4), np.uint8))
        assert wait(lambda: live.error is not None) and "too small" in live.error
        live.submit(rgba, 1)  # the next good frame clears it
        assert wait(lambda: live.mattes()) and live.error is None
    finally:
        live.close()
    corrupt = tmp_path / "broken.onnx"
    corrupt.write_bytes(b"not a model")
    (tmp_path / "broken.refiner.onnx").write_bytes(b"not a model")
    live = LiveMatter({"model": str(corrupt), "device": "cpu"})
    try:
        assert wait(lambda: live.error is not None) and "broken.onnx" in live.error
    finally:
        live.close()


def test_a_dead_child_is_reported_and_close_is_immediate(rgba):
    live = LiveMatter({"config": "realtime", "device": "cpu"})
    assert wait(lambda: live.idle)
    live.proc.kill()
    live.submit(rgba, 1)
    assert wait(lambda: live.error is not None) and "exit code" in live.error
    live.close()
    live = LiveMatter({"config": "quality", "device": "cpu"})
    live.submit(np.dstack([np.tile(rgba, (4, 4, 1))]), 1)  # a large frame still in progress
    start = time.monotonic()
    live.close()
    assert time.monotonic() - start < 5 and live.proc.returncode is not None


def test_an_environment_without_cramatte_says_so(tmp_path):
    live = LiveMatter({"config": "realtime"}, python=sys.executable + "-missing")
    assert live.error and "cannot start" in live.error
    live.close()
    bare = tmp_path / "bare"
    import venv
    venv.create(bare, with_pip=False)
    live = LiveMatter({"config": "realtime"}, python=str(bare / "bin" / "python"))
    try:
        assert wait(lambda: live.error is not None) and "No module named" in live.error
    finally:
        live.close()


def test_the_host_side_loads_no_opencv_and_no_model_runtime():
    code = ("import sys, cramatte.live; "
            "print(sorted(m for m in ('cv2', 'onnxruntime', 'cramatte.runtime') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"
