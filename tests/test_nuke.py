"""The Nuke node's whole flow against a fake `nuke` module, on EXR plates on disk."""
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
    runpy.run_path(str(NUKE_DIR / "init.py"))
    runpy.run_path(str(NUKE_DIR / "menu.py"))
    assert nuke.menu("Nodes").items["cramatte"].items["Portrait Matte"] is cramatte_nuke.create_node


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
