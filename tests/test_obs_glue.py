"""The OBS filter's glue against a fake libobs and obspython: registration, settings, the render path
that never waits for the model, failures that pass video through, and instance churn."""
import ctypes
import importlib
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
from cramatte.model.configs import get_config  # noqa: E402

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
    assert filt.live._make().config == get_config(config)
    uploaded = fake.textures[filt.alpha_tex]["pixels"]
    ref = Matter(config=config, device="cpu")(fake.frame[..., :3]).alpha
    assert uploaded.shape == (120, 160)
    assert np.abs(uploaded / 255 - ref).max() <= 1 / 255 + 1e-6
    assert fake.params["mode"] == 0 and fake.params["matte"] == filt.alpha_tex


def test_render_never_waits_for_the_model(fake, monkeypatch):
    release = threading.Event()

    class SlowMatter(Matter):
        def alpha(self, rgb):
            release.wait(30)
            return super().alpha(rgb)

    monkeypatch.setattr("cramatte.Matter", SlowMatter)
    key = portrait_matte._info.create(fake.settings(SETTINGS), 1)
    for _ in range(50):  # the model is stuck: every frame passes through, none waits
        portrait_matte._info.video_render(key, None)
    assert fake.skips == 50 and fake.filter_ends == 0
    assert fake.grabs == 1  # one frame handed to the busy worker, no more
    release.set()
    assert render_until(fake, key, lambda: fake.filter_ends > 0)


def test_settings_change_the_shader_mode(fake):
    key = portrait_matte._info.create(fake.settings(SETTINGS), 1)
    assert render_until(fake, key, lambda: fake.filter_ends > 0)
    for changes, mode in (({"background": "blur", "blur": 20.0}, 2), ({"show_matte": True}, 4),
                          ({"background": "colour"}, 1)):
        portrait_matte._info.update(key, fake.settings({**SETTINGS, **changes}))
        before = fake.filter_ends
        portrait_matte._info.video_render(key, None)
        assert fake.filter_ends == before + 1 and fake.params["mode"] == mode
        if mode == 2:
            assert fake.params["blur_radius"] == 20.0
    assert fake.params["bg_color"] == (1.0, 0.0, 0.0, 1.0)  # 0xAABBGGRR -> red


def test_model_failure_passes_video_through_and_says_why(fake, monkeypatch):
    def broken(*a, **k):
        raise ValueError("model file /tmp/x.onnx is corrupt")

    monkeypatch.setattr("cramatte.Matter", broken)
    key = portrait_matte._info.create(fake.settings(SETTINGS), 1)
    filt = portrait_matte.instances[key]
    deadline = time.monotonic() + 10
    while filt.live.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    portrait_matte._info.video_render(key, None)
    assert fake.skips == 1 and fake.filter_ends == 0
    portrait_matte._info.get_properties(key)
    assert any("corrupt" in desc for _, desc in fake.props if desc)


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


def test_script_finds_cramatte_or_says_what_to_install(tmp_path):
    import obspython

    script = importlib.import_module("cramatte_obs")
    assert script.find_cramatte("") is None  # importable here
    script.script_load({})
    assert "Setup needed" not in script.script_description()
    script.script_properties()
    assert "python_env" in obspython.properties
    portrait_matte.state["import_error"] = "cramatte is not installed for OBS's Python 3.11"
    assert "Setup needed" in script.script_description()
    script.script_unload()


def test_remote_control_never_shows_the_password(monkeypatch, capsys, caplog):
    import logging

    from cramatte.cli import main

    calls = []

    class Client:
        def __init__(self, **kw):
            calls.append(("connect", kw))
            logging.getLogger("obsws_python").info("connecting with %s", kw)  # what obsws-python does

        def create_source_filter(self, *a):
            calls.append(("add", a))

        def set_source_filter_settings(self, *a, **k):
            calls.append(("set", a))

        def remove_source_filter(self, *a):
            calls.append(("remove", a))

    import obsws_python
    monkeypatch.setattr(obsws_python, "ReqClient", Client)
    monkeypatch.setenv("OBS_WEBSOCKET_PASSWORD", "hunter2-secret")
    with caplog.at_level(logging.DEBUG):
        assert main(["-v", "obs", "add", "--source", "Cam", "--set", "preset=fast", "blur=20", "show_matte=true"]) == 0
        assert main(["obs", "set", "--source", "Cam", "--set", "background=blur"]) == 0
        assert main(["obs", "remove", "--source", "Cam"]) == 0
    assert calls[0] == ("connect", {"host": "127.0.0.1", "port": 4455, "password": "hunter2-secret", "timeout": 10})
    assert calls[1] == ("add", ("Cam", "Portrait Matte", "cramatte_portrait_matte",
                                {"preset": "fast", "blur": 20, "show_matte": True}))
    assert calls[3][0] == "set" and calls[5] == ("remove", ("Cam", "Portrait Matte"))
    out = capsys.readouterr()
    assert "hunter2" not in out.out + out.err and "hunter2" not in caplog.text
    assert main(["obs", "add", "--source", "Cam", "--set", "nonsense"]) == 2
