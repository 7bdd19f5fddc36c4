"""The OBS filter's glue against a fake libobs and obspython: registration, settings, the render path
that never waits for the model, failures that pass video through, and instance churn."""
import ctypes
import importlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE / "fake_obs"), str(HERE.parent / "obs_plugin")]

import portrait_matte  # noqa: E402
from fake_libobs import FakeLibobs  # noqa: E402

from cramatte import Matter  # noqa: E402

SETTINGS = {"preset": "balanced", "device": "cpu", "threads": 0, "every": 1, "smoothing": 0.0, "grow": 0.0,
            "feather": 0.0, "background": "transparent", "blur": 12.0, "colour": 0xFF0000FF, "image": "",
            "show_matte": False}


@pytest.fixture
def fake(sample):
    rgba = np.dstack([cv2.resize(sample, (160, 120)), np.full((120, 160), 255, np.uint8)])
    lib = FakeLibobs(np.ascontiguousarray(rgba))
    portrait_matte.register(lib)
    portrait_matte.lib = lib
    portrait_matte.state["import_error"] = None
    yield lib
    for key in list(portrait_matte.instances):
        portrait_matte._info.destroy(key)


def render_until(fake, key, done, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        portrait_matte._info.video_render(key, None)
        time.sleep(0.005)
    return done()


def test_registers_once_across_reloads(fake):
    assert portrait_matte.register(fake) is False
    reloaded = importlib.reload(sys.modules["libobs"])
    assert portrait_matte.register(fake) is False and reloaded is not None
    info = portrait_matte._info
    assert info.id == b"cramatte_portrait_matte" and info.type == 1 and info.output_flags == 1
    name = ctypes.cast(info.get_name(None), ctypes.c_char_p).value
    assert name == b"Portrait Matte (cramatte)"


def test_defaults_and_properties(fake):
    settings = fake.settings({})
    portrait_matte._info.get_defaults(settings)
    assert fake.data[settings]["preset"] == "balanced" and fake.data[settings]["every"] == 1
    portrait_matte._info.get_properties(None)
    names = [n for n, _ in fake.props]
    for key in ("preset", "device", "threads", "every", "smoothing", "grow", "feather", "background",
                "blur", "colour", "image", "show_matte"):
        assert key in names
    devices = [v for p, v in fake.props if p == "device" and v]
    assert devices[0] == "auto" and "cpu" in devices and "coreml" not in devices  # only what is present


@pytest.mark.parametrize("preset, config", [("balanced", "realtime"), ("fast", "fast"), ("quality", "quality")])
def test_matte_reaches_the_shader(fake, preset, config):
    key = portrait_matte._info.create(fake.settings({**SETTINGS, "preset": preset}), 1)
    assert key
    assert render_until(fake, key, lambda: fake.filter_ends > 0)
    filt = portrait_matte.instances[key]
    assert filt.live.matter["config"] == config
    uploaded = fake.textures[filt.alpha_tex]["pixels"]
    ref = Matter(config=config, device="cpu")(fake.frame[..., :3]).alpha
    assert uploaded.shape == (120, 160)
    assert np.abs(uploaded / 255 - ref).max() <= 1 / 255 + 1e-6
    assert fake.params["mode"] == 0 and fake.params["matte"] == filt.alpha_tex


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="stops the model's process with SIGSTOP")
def test_render_never_waits_for_the_model(fake):
    key = portrait_matte._info.create(fake.settings(SETTINGS), 1)
    live = portrait_matte.instances[key].live
    deadline = time.monotonic() + 30
    while not live.idle and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(live.proc.pid, signal.SIGSTOP)  # the model is stuck: every frame passes through, none waits
    try:
        for _ in range(50):
            portrait_matte._info.video_render(key, None)
        assert fake.skips == 50 and fake.filter_ends == 0
        assert fake.stagings <= 2  # a frame for the busy worker and one waiting for it, no more read-backs
    finally:
        os.kill(live.proc.pid, signal.SIGCONT)
    assert render_until(fake, key, lambda: fake.filter_ends > 0)


@pytest.mark.parametrize("every", [1, 2, 3])
def test_a_frame_is_shown_with_its_own_matte_or_one_at_most_n_minus_1_older(fake, every):
    """Frame-accurate timing with a worker slower than the video, its latency varying (3-8 frames):
    each frame shown carries its own matte or, with "compute every N", one at most N-1 frames older;
    when the worker falls further behind, the newest frame that has a matte is shown again."""
    filt = portrait_matte.PortraitMatte(1)
    filt.settings = {**SETTINGS, "sync": "frame", "every": every}
    rng = np.random.default_rng(every)
    mattes, job, ready, version, repeats = [], None, 0, 0, 0
    for fid in range(1, 400):
        filt.frames[fid] = fake.gs_texrender_create(0, 0)
        if job is not None and fid >= ready:
            version += 1
            mattes, job = (mattes + [(job, None, version)])[-16:], None
        if job is None and fid % every == 0:
            job, ready, filt.awaiting = fid, fid + int(rng.integers(3, 9)), fid
        if not mattes:
            continue
        show, (tag, _, _) = filt._choose(fid, mattes)
        assert show in filt.frames and 0 <= show - tag < every, (fid, show, tag)
        repeats += show == tag and show < fid - filt.delay
        filt._release(filt._oldest_needed(fid, show, mattes))
        assert len(filt.frames) <= 2 * 8 + every  # kept frames stay within the matte's latency
    assert repeats > 0  # the worker did fall behind, and frames were shown again


def test_settings_change_the_shader_mode(fake):
    key = portrait_matte._info.create(fake.settings(SETTINGS), 1)
    assert render_until(fake, key, lambda: fake.filter_ends > 0)
    for changes, mode in (({"background": "blur", "blur": 20.0}, 2), ({"show_matte": True}, 4),
                          ({"background": "colour"}, 1)):
        portrait_matte._info.update(key, fake.settings({**SETTINGS, **changes}))
        assert render_until(fake, key, lambda: fake.params["mode"] == mode)
    assert fake.params["bg_color"] == (1.0, 0.0, 0.0, 1.0)  # 0xAABBGGRR -> red


def test_blurred_background_is_a_gaussian_blur_without_grid(fake):
    """The background the shader stretches over the frame, against OpenCV's Gaussian blur of the frame."""
    key = portrait_matte._info.create(fake.settings({**SETTINGS, "background": "blur", "blur": 20.0}), 1)
    assert render_until(fake, key, lambda: fake.params.get("mode") == 2)
    small = fake.textures[fake.params["background"]]["pixels"]
    h, w = fake.frame.shape[:2]
    assert small.shape[2] == 4 and small.shape[0] < h  # made small by the worker...
    stretched = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)  # ...stretched as the GPU samples it
    reference = cv2.GaussianBlur(fake.frame, (0, 0), 20.0, borderType=cv2.BORDER_REFLECT)
    inner = (slice(40, h - 40), slice(40, w - 40))
    assert np.abs(stretched[inner].astype(int) - reference[inner]).mean() < 2.0


def test_model_failure_passes_video_through_and_says_why(fake, tmp_path, monkeypatch):
    """An environment whose Python cannot run the model: the filter passes video through and shows why."""
    python = tmp_path / "env" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'onnxruntime'\" >&2\nexit 1\n")
    python.chmod(0o755)
    monkeypatch.setitem(portrait_matte.state, "python_env", str(tmp_path / "env"))
    key = portrait_matte._info.create(fake.settings(SETTINGS), 1)
    filt = portrait_matte.instances[key]
    deadline = time.monotonic() + 10
    while filt.live.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    portrait_matte._info.video_render(key, None)
    assert fake.skips == 1 and fake.filter_ends == 0
    portrait_matte._info.get_properties(key)
    assert any("No module named 'onnxruntime'" in desc for _, desc in fake.props if desc)


def test_a_crashed_model_process_passes_video_through(fake):
    key = portrait_matte._info.create(fake.settings(SETTINGS), 1)
    assert render_until(fake, key, lambda: fake.filter_ends > 0)
    live = portrait_matte.instances[key].live
    live.proc.kill()
    assert render_until(fake, key, lambda: live.error is not None)
    ends = fake.filter_ends
    portrait_matte._info.video_render(key, None)
    assert fake.filter_ends == ends and "exit code" in live.error


def test_missing_cramatte_passes_through(fake):
    portrait_matte.state["import_error"] = "cramatte is not installed"
    key = portrait_matte._info.create(fake.settings(SETTINGS), 1)
    assert portrait_matte.instances[key].live is None
    portrait_matte._info.video_render(key, None)
    assert fake.skips == 1


def test_source_resize(fake, sample):
    key = portrait_matte._info.create(fake.settings(SETTINGS), 1)
    assert render_until(fake, key, lambda: fake.filter_ends > 0)
    fake.frame = np.ascontiguousarray(np.dstack([cv2.resize(sample, (96, 64)), np.full((64, 96), 255, np.uint8)]))
    filt = portrait_matte.instances[key]
    assert render_until(fake, key, lambda: fake.textures[filt.alpha_tex]["pixels"] is not None
                        and fake.textures[filt.alpha_tex]["size"] == (96, 64))
    assert fake.textures[filt.alpha_tex]["pixels"].shape == (64, 96)


def test_add_and_remove_100_times_leaves_nothing_behind(fake):
    threads = threading.active_count()
    for _ in range(100):
        key = portrait_matte._info.create(fake.settings(SETTINGS), 1)
        portrait_matte._info.video_render(key, None)
        portrait_matte._info.destroy(key)
    time.sleep(0.5)
    assert portrait_matte.instances == {}
    assert threading.active_count() <= threads + 1
    assert len(fake.textures) <= 1  # every alpha texture destroyed (one background slot at most)


def test_script_finds_cramatte_or_says_what_to_install(tmp_path, monkeypatch):
    import obspython

    monkeypatch.setenv("HOME", str(tmp_path))
    script = importlib.import_module("cramatte_obs")
    assert script.find_cramatte("") is None  # importable here
    script.script_load({})
    assert "Setup needed" not in script.script_description() and "Ready" in script.script_description()
    script.script_properties()
    assert "python_env" in obspython.properties and "Ready" in obspython.texts["status"]
    error = script.find_cramatte(str(tmp_path / "no-env"))
    assert "not a Python environment" in error and "pip install /path/to/cramatte" in error
    assert "pip install cramatte" not in error  # no index serves that name
    portrait_matte.state["import_error"] = error
    assert "Setup needed" in script.script_description()
    script.script_properties()
    assert "Setup needed" in obspython.texts["status"]
    script.script_unload()


def test_script_reads_an_editable_install_and_ignores_a_shadowing_folder(tmp_path, monkeypatch):
    """A venv whose cramatte is an editable install (a .pth file), and a working directory holding a
    folder named cramatte, as when OBS starts from the folder above the checkout."""
    import subprocess

    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site_dir = next(env.glob("lib/python*/site-packages"))
    (tmp_path / "pkg" / "cramatte_probe").mkdir(parents=True)
    (tmp_path / "pkg" / "cramatte_probe" / "__init__.py").write_text("WHERE = 'editable'\n")
    (site_dir / "probe.pth").write_text(str(tmp_path / "pkg") + "\n")
    (tmp_path / "cwd" / "cramatte").mkdir(parents=True)  # an empty folder that would shadow the package
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr(sys, "path", ["", *sys.path])
    monkeypatch.setenv("HOME", str(tmp_path))
    sys.modules.pop("cramatte_obs", None)
    script = importlib.import_module("cramatte_obs")
    assert "" not in sys.path and str(tmp_path / "cwd") not in sys.path
    assert script.find_cramatte(str(env)) is None
    import cramatte_probe
    assert cramatte_probe.WHERE == "editable"  # the .pth file was read


def test_remote_control_never_shows_the_password(monkeypatch, capsys, caplog):
    import logging
    from types import SimpleNamespace

    from cramatte.cli import main

    calls = []
    sources = {"Cam": [{"filterName": "Portrait Matte (cramatte)", "filterKind": "cramatte_portrait_matte"},
                       {"filterName": "Colour", "filterKind": "color_filter_v2"}], "Mic": []}

    class RequestError(Exception):
        code = 600

    class Client:
        """obs-websocket as OBS answers: a GUI-added matte filter on Cam, no source named Nowhere."""
        def __init__(self, **kw):
            calls.append(("connect", kw))
            logging.getLogger("obsws_python").info("connecting with %s", kw)  # what obsws-python does

        def get_source_filter_list(self, source):
            if source not in sources:
                raise RequestError("Request GetSourceFilterList returned code 600.")
            return SimpleNamespace(filters=sources[source])

        def create_source_filter(self, *a):
            calls.append(("add", a))
            sources[a[0]].append({"filterName": a[1], "filterKind": a[2]})

        def set_source_filter_settings(self, *a, **k):
            calls.append(("set", a))

        def remove_source_filter(self, *a):
            calls.append(("remove", a))
            sources[a[0]][:] = [f for f in sources[a[0]] if f["filterName"] != a[1]]

    import obsws_python
    monkeypatch.setattr(obsws_python, "ReqClient", Client)
    monkeypatch.setenv("OBS_WEBSOCKET_PASSWORD", "hunter2-secret")
    with caplog.at_level(logging.DEBUG):
        assert main(["-v", "obs", "add", "--source", "Cam", "--set", "preset=fast", "blur=20", "show_matte=true"]) == 0
        assert main(["obs", "set", "--source", "Cam", "--set", "background=blur"]) == 0
        assert main(["obs", "remove", "--source", "Cam"]) == 0
        assert main(["obs", "add", "--source", "Mic"]) == 0
        assert main(["obs", "add", "--source", "Mic", "--set", "preset=fast"]) == 0
    assert calls[0] == ("connect", {"host": "127.0.0.1", "port": 4455, "password": "hunter2-secret", "timeout": 10})
    # the GUI-added filter is found by its kind: add updates it, set tunes it, remove removes it
    assert calls[1] == ("set", ("Cam", "Portrait Matte (cramatte)", {"preset": "fast", "blur": 20, "show_matte": True}))
    assert calls[3][0] == "set" and calls[5] == ("remove", ("Cam", "Portrait Matte (cramatte)"))
    assert calls[7] == ("add", ("Mic", "Portrait Matte", "cramatte_portrait_matte", {}))
    assert calls[9] == ("set", ("Mic", "Portrait Matte", {"preset": "fast"}))  # a second add: one filter, updated
    assert [f["filterKind"] for f in sources["Mic"]] == ["cramatte_portrait_matte"]
    out = capsys.readouterr()
    assert "hunter2" not in out.out + out.err and "hunter2" not in caplog.text
    assert main(["obs", "set", "--source", "Nowhere"]) == 2
    assert capsys.readouterr().err.strip() == "cramatte: error: OBS has no source named 'Nowhere'"
    assert main(["obs", "remove", "--source", "Cam"]) == 2
    assert "has no Portrait Matte filter" in capsys.readouterr().err

    def refuse(**kw):
        raise ConnectionRefusedError(111, "Connection refused")

    def wrong_password(**kw):
        raise obsws_python.error.OBSSDKError("failed to identify client with the server, please check connection settings")

    for factory, words in ((refuse, "connection refused"), (wrong_password, "refused the password")):
        monkeypatch.setattr(obsws_python, "ReqClient", factory)
        assert main(["obs", "add", "--source", "Cam"]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    monkeypatch.setattr(obsws_python, "ReqClient", Client)
    assert main(["obs", "add", "--source", "Cam", "--set", "nonsense"]) == 2
