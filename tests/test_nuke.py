"""The Nuke node's whole flow against a fake `nuke` module, on EXR plates on disk."""
import os
import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cramatte import Matter
from cramatte.frames import srgb_to_linear
from cramatte.io import read_exr, write_exr

HERE = Path(__file__).parent
NUKE_DIR = HERE.parent / "nuke_node"
sys.path[:0] = [str(HERE / "fake_nuke"), str(NUKE_DIR / "python")]

import cramatte_nuke  # noqa: E402
import nuke  # noqa: E402


@pytest.fixture
def shot(tmp_path, sample):
    """Three scene-linear EXR frames of the sample (moved a little) and a Read of them."""
    frames = [np.roll(sample[::2, ::2], 4 * i, axis=1) for i in range(3)]
    plate_dir = tmp_path / "plates"
    plate_dir.mkdir()
    for i, f in enumerate(frames, start=1):
        write_exr(plate_dir / f"plate.{i:04d}.exr", srgb_to_linear(f.astype(np.float32) / 255) * 1.5)
    read = nuke.nodes.Read(file=str(plate_dir / "plate.####.exr"))
    nuke.messages.clear()
    nuke.ProgressTask.cancel_after = None
    return frames, read


def test_node_offers_every_named_configuration():
    from cramatte.model.configs import CONFIGS

    assert sorted(cramatte_nuke.CONFIGS) == sorted(CONFIGS)


def _node(read, tmp_path, output="alpha"):
    group = cramatte_nuke.create_node()
    group.setInput(0, read)
    group["first"].setValue(1)
    group["last"].setValue(3)
    group["cache"].setValue(str(tmp_path / "cache"))
    group["config"].setValue("realtime")
    group["output"].setValue(output)
    return group


def test_generate_writes_matte_and_wires_read(shot, tmp_path):
    frames, read = shot
    group = _node(read, tmp_path, "alpha + foreground")
    cramatte_nuke.generate(group, wait=True)
    nuke.run_main_thread()
    assert nuke.messages == []
    with group:
        matte_read, copy = nuke.toNode("MatteRead"), nuke.toNode("MatteCopy")
        out = nuke.toNode("Output1")
    folder = tmp_path / "cache" / group.name() / "matte"
    assert matte_read["file"].value() == str(folder / "matte.####.exr")
    assert not matte_read["disable"].value() and matte_read["reload"].executed == 1
    assert (matte_read["first"].value(), matte_read["last"].value()) == (1, 3)
    assert copy.input(1) is matte_read and copy["to0"].value() == "rgba.alpha"
    assert sorted(p.name for p in folder.iterdir()) == [f"matte.{i:04d}.exr" for i in (1, 2, 3)]
    assert not (tmp_path / "cache" / group.name() / "matte.partial").exists()
    # the chain from the plate to the output passes the Copy
    node, chain = out, []
    while node is not None:
        chain.append(node.name())
        node = node.input(0)
    assert chain[-2:] == ["MatteCopy", "Input1"] and "Premult" in chain
    # the alpha agrees with the runtime's matte of the sRGB frame (the plate was linear x1.5: brighter)
    cli = Matter(config="realtime")
    for i, frame in enumerate(frames, start=1):
        rgba = read_exr(folder / f"matte.{i:04d}.exr")
        assert rgba.shape == frame.shape[:2] + (4,)
        ref = cli(srgb_to_linear(frame.astype(np.float32) / 255) * 1.5, colorspace="linear").alpha
        assert np.abs(rgba[..., 3] - ref).max() < 1e-4
        body = rgba[..., 3] > 0.99  # foreground is written back in scene-linear, values above 1 kept
        assert rgba[..., :3][body].max() > 1.0


def test_cancel_leaves_no_half_sequence(shot, tmp_path):
    _, read = shot
    group = _node(read, tmp_path)
    nuke.ProgressTask.cancel_after = 1
    cramatte_nuke.generate(group, wait=True)
    nuke.run_main_thread()
    base = tmp_path / "cache" / group.name()
    assert not (base / "matte").exists() and not (base / "matte.partial").exists()
    assert "cancelled" in group["status"].value()
    with group:
        assert nuke.toNode("MatteRead")["disable"].value()


def test_previous_matte_survives_a_failed_run(shot, tmp_path):
    _, read = shot
    group = _node(read, tmp_path)
    cramatte_nuke.generate(group, wait=True)
    nuke.run_main_thread()
    folder = tmp_path / "cache" / group.name() / "matte"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    group["model"].setValue(str(bad))
    cramatte_nuke.generate(group, wait=True)
    nuke.run_main_thread()
    assert any("broken.onnx" in m for m in nuke.messages)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert not (folder.parent / "matte.partial").exists()


def test_user_errors_go_to_a_message_box(shot, tmp_path):
    _, read = shot
    group = _node(read, tmp_path)
    group["last"].setValue(0)
    assert cramatte_nuke.generate(group) is None
    assert "frame range" in nuke.messages[-1]
    lonely = _node(None, tmp_path)
    assert cramatte_nuke.generate(lonely) is None
    assert "connect a plate" in nuke.messages[-1]


def test_init_and_menu_register_the_node():
    nuke.pluginAddPath(str(NUKE_DIR))  # as NUKE_PATH does
    exec(compile((NUKE_DIR / "init.py").read_text(), "init.py", "exec"), {"__name__": "__main__"})  # no __file__
    assert str(NUKE_DIR / "python") in nuke.pluginPath()
    runpy.run_path(str(NUKE_DIR / "menu.py"))
    assert nuke.menu("Nodes").items["cramatte"].items["Portrait Matte"] is cramatte_nuke.create_node


def test_node_takes_the_selected_nodes_place_and_writes_a_named_layer():
    read = nuke.nodes.Read(file="plate.####.exr")
    grade = nuke.nodes.Grade()
    grade.setInput(0, read)
    read.setSelected(True)
    read.setXYpos(100, 200)
    try:
        group = cramatte_nuke.create_node()
    finally:
        read.setSelected(False)
    assert group.input(0) is read and grade.input(0) is group and (group.xpos(), group.ypos()) == (100, 260)
    assert nuke.layers() == ["cramatte"]
    copy = next(n for n in group.nodes() if n.name() == "MatteCopy")
    assert copy["to0"].value() == "rgba.alpha" and copy["to1"].value() == "cramatte.alpha"
    lonely = cramatte_nuke.create_node()  # nothing selected: unconnected, and the layer is made once
    assert lonely.input(0) is None and nuke.layers() == ["cramatte"]


def _python(version: str):
    """A working `python<version>`: on PATH, or one of pyenv's (this machine's image has several)."""
    import glob
    import shutil
    import subprocess

    pyenv = sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))
    for candidate in [shutil.which(f"python{version}"), *pyenv]:
        if candidate and subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


NUKE_PYTHONS = {"14": "3.9", "15": "3.10", "16": "3.11"}


@pytest.mark.parametrize("nuke_version", sorted(NUKE_PYTHONS))
def test_install_steps_for_each_nuke_python(nuke_version, tmp_path):
    """The README's steps: install cramatte with the Python of that Nuke into site-py3.X beside init.py;
    then that Python, with the stand-in `nuke`, runs init.py and mattes a frame through the node module."""
    import shutil
    import subprocess

    version = NUKE_PYTHONS[nuke_version]
    python = _python(version)
    if python is None:
        message = f"python{version} (Nuke {nuke_version}'s Python) is needed for this test"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    folder = tmp_path / "nuke_node"
    shutil.copytree(NUKE_DIR, folder, ignore=shutil.ignore_patterns("__pycache__", "site-py*"))
    site = folder / f"site-py{version}"
    res = subprocess.run([python, "-m", "pip", "install", "-q", "--target", str(site), str(NUKE_DIR.parent)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    check = (
        "import sys\n"
        "import nuke\n"
        f"nuke.pluginAddPath({str(folder)!r})\n"
        f"exec(compile(open({str(folder / 'init.py')!r}).read(), 'init.py', 'exec'), {{'__name__': '__main__'}})\n"
        "sys.path.insert(0, nuke.pluginPath()[0])\n"
        "import numpy as np, cramatte, cramatte_nuke\n"
        f"assert cramatte.__file__.startswith({str(site)!r}), cramatte.__file__\n"
        "alpha = cramatte.Matter()(np.full((64, 48, 3), 128, np.uint8)).alpha\n"
        "print(sys.version_info[:2], alpha.shape)\n")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(HERE / "fake_nuke"), "PYTHONNOUSERSITE": "1"}
    res = subprocess.run([python, "-S", "-c", check], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"({version.replace('.', ', ')}) (64, 48)" in res.stdout


def test_torchscript_export_matches_the_onnx_model(tmp_path, sample):
    import json

    import torch

    from cramatte.cli import main
    from cramatte.runtime import shipped_model

    assert main(["export", "--target", "nuke", "--config", "realtime", "-o", str(tmp_path)]) == 0
    folder = tmp_path / "Cramatte"
    assert sorted(p.name for p in folder.iterdir()) == ["Cramatte.gizmo", "Cramatte.pt", "README.md", "cat.json"]
    assert json.loads((folder / "cat.json").read_text())["cats"][0]["filepath"] == "Cramatte.gizmo"
    assert "Inference" in (folder / "Cramatte.gizmo").read_text()
    module = torch.jit.load(str(folder / "Cramatte.pt"))
    linear = srgb_to_linear(sample.astype(np.float32) / 255)
    # 256x320: the internal size equals the frame, so both paths see identical inputs end to end
    frame = np.ascontiguousarray(linear[:256, :320])
    with torch.no_grad():
        ts = module(torch.from_numpy(frame.transpose(2, 0, 1)[None].copy()))[0, 0].numpy()
    onnx = Matter(shipped_model(), config="realtime")(frame, colorspace="linear").alpha
    assert ts.shape == (256, 320) and np.abs(ts - onnx).max() <= 1e-3
    # a larger plate, resized inside: 640 -> 320 is an exact 2x2 box in both paths
    plate = cv2.resize(linear, (640, 640), interpolation=cv2.INTER_LINEAR)
    with torch.no_grad():
        ts = module(torch.from_numpy(plate.transpose(2, 0, 1)[None].copy()))[0, 0].numpy()
    onnx = Matter(shipped_model(), config="realtime")(plate, colorspace="linear").alpha
    assert ts.shape == (640, 640) and np.abs(ts - onnx).max() <= 1e-3


def test_torchscript_runs_in_nukes_pytorch_1_12(tmp_path, sample):
    """Nuke 14 and 15 run PyTorch 1.12: the exported model loads there, in an environment of its own
    (Python 3.10, torch 1.12.1 from PyPI), and gives this PyTorch's result."""
    import subprocess

    import torch

    from cramatte.export import export_nuke
    from cramatte.runtime import shipped_model

    python = _python("3.10")
    if python is None:
        pytest.fail("python3.10 is needed") if os.environ.get("CI") else pytest.skip("python3.10 is needed")
    env = tmp_path / "torch112"
    subprocess.run([python, "-m", "venv", str(env)], check=True)
    res = subprocess.run([str(env / "bin" / "pip"), "install", "-q", "torch==1.12.1", "numpy<2"],
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-2000:]
    folder = export_nuke(shipped_model(".safetensors"), tmp_path / "cattery", config="realtime")
    frame = srgb_to_linear(sample[::2, ::2].astype(np.float32) / 255)
    np.save(tmp_path / "in.npy", np.ascontiguousarray(frame.transpose(2, 0, 1))[None])
    here = torch.jit.load(str(folder / "Cramatte.pt"))(torch.from_numpy(np.load(tmp_path / "in.npy"))).detach().numpy()
    code = ("import sys, numpy as np, torch\n"
            "assert torch.__version__.startswith('1.12'), torch.__version__\n"
            "m = torch.jit.load(sys.argv[1])\n"
            "np.save(sys.argv[3], m(torch.from_numpy(np.load(sys.argv[2]))).detach().numpy())\n")
    res = subprocess.run([str(env / "bin" / "python"), "-c", code, str(folder / "Cramatte.pt"), str(tmp_path / "in.npy"),
                          str(tmp_path / "out.npy")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert np.abs(np.load(tmp_path / "out.npy") - here).max() < 1e-4
