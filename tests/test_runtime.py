"""The runtime API: sizes, dtypes, colour spaces, batches, foreground, and every bad input class."""
import logging

import numpy as np
import pytest

from cramatte import FrameError, Matter
from cramatte.frames import linear_to_srgb, srgb_to_linear
from conftest import person_and_corners


def test_sample_person_opaque_corners_transparent(matter, sample):
    alpha = matter(sample).alpha
    assert alpha.shape == sample.shape[:2] and alpha.dtype == np.float32
    body, corners = person_and_corners(alpha)
    assert body > 0.9 and corners < 0.1


@pytest.mark.parametrize("h,w", [(65, 97), (1080, 1920), (4000, 3000)])
def test_odd_and_large_sizes(matter, h, w):
    frame = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    alpha = matter(frame).alpha
    assert alpha.shape == (h, w)
    assert np.isfinite(alpha).all() and alpha.min() >= 0 and alpha.max() <= 1


def test_batch_equals_per_frame(matter, sample):
    frames = np.stack([sample, sample[:, ::-1], sample[::-1]])
    batched = matter(frames).alpha
    assert batched.shape == (3, 512, 512)
    for frame, alpha in zip(frames, batched):
        np.testing.assert_allclose(alpha, matter(frame).alpha, atol=1e-4)


def _agree_but_for_region_flips(a, b):
    """Mattes of one frame given in two encodings: the input's rounding may flip which cells make the
    top K, and a flipped cell is refined in one and not the other; everything else agrees."""
    diff = np.abs(a - b)
    assert diff.mean() < 1e-3 and np.quantile(diff, 0.99) < 2e-2


def test_dtypes_and_rgba_agree(sample):
    from cramatte.runtime import shipped_model

    matter = Matter(shipped_model())  # fp32 graphs: int8 activations would add their own rounding
    ref = matter(sample).alpha
    as16 = matter(sample.astype(np.uint16) * 257).alpha
    asf = matter(sample.astype(np.float32) / 255).alpha
    rgba = matter(np.dstack([sample, np.zeros(sample.shape[:2], np.uint8)])).alpha
    assert np.array_equal(rgba, ref)
    for other in (as16, asf):  # 8-bit frames are shrunk in 8 bits
        _agree_but_for_region_flips(other, ref)


def test_linear_input_gives_the_srgb_matte(sample):
    from cramatte.runtime import shipped_model

    matter = Matter(shipped_model())
    linear = srgb_to_linear(sample.astype(np.float32) / 255)
    np.testing.assert_allclose(linear_to_srgb(linear), sample / 255, atol=1e-5)
    _agree_but_for_region_flips(matter(linear, colorspace="linear").alpha, matter(sample).alpha)
    bright = matter(linear * 4, colorspace="linear").alpha  # over-exposed plate: values above 1 are fine
    assert np.isfinite(bright).all()


def test_foreground_and_rgba(matter, sample):
    matte = matter(sample, foreground=True)
    assert matte.foreground.shape == sample.shape and matte.foreground.dtype == np.float32
    straight, premult = matte.rgba(), matte.rgba(premultiplied=True)
    assert straight.shape == (512, 512, 4)
    np.testing.assert_allclose(premult[..., :3], straight[..., :3] * straight[..., 3:], atol=1e-6)
    # the foreground colour matches the frame where the matte is opaque
    solid = matte.alpha > 0.99
    assert np.abs(matte.foreground[solid] - sample[solid] / 255).mean() < 0.02
    with pytest.raises(ValueError, match="foreground=True"):
        matter(sample).rgba()


@pytest.mark.parametrize("frame,message", [
    (np.zeros((1, 1, 3), np.uint8), "too small"),
    (np.zeros((64, 64), np.uint8), "HxWxC"),
    (np.zeros((2, 2, 64, 64, 3), np.uint8), "HxWxC"),
    (np.zeros((64, 64, 2), np.uint8), "channels"),
    (np.zeros((64, 64, 3), np.float64), "float64"),
    (np.zeros((64, 64, 3), np.int32), "int32"),
    (np.full((64, 64, 3), np.nan, np.float32), "NaN"),
    (np.full((64, 64, 3), np.inf, np.float32), "infinite"),
    (np.zeros((0, 64, 64, 3), np.uint8), "empty"),
    (np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (32, 20000, 3)), "too large"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_frames_get_a_clear_error(matter, frame, message):
    with pytest.raises(FrameError, match=message):
        matter(frame)


def test_bad_colorspace(matter, sample):
    with pytest.raises(FrameError, match="colorspace"):
        matter(sample, colorspace="acescg")


@pytest.mark.parametrize("suffix", [".onnx", ".safetensors"])
def test_corrupt_model_file_is_named(tmp_path, suffix):
    bad = tmp_path / f"broken{suffix}"
    bad.write_bytes(b"\x00not a model at all" * 10)
    backend = "onnx" if suffix == ".onnx" else "torch"
    with pytest.raises(ValueError, match="broken"):
        Matter(bad, backend=backend)


def test_missing_model_and_wrong_kind(tmp_path):
    with pytest.raises((FileNotFoundError, ValueError), match="nowhere"):
        Matter(tmp_path / "nowhere.onnx")
    with pytest.raises(ValueError, match="safetensors"):
        Matter(tmp_path / "x.onnx", backend="torch")
    with pytest.raises(ValueError, match="backend"):
        Matter(backend="tensorflow")


def test_refiner_graph_is_required_beside_the_model(tmp_path):
    import shutil

    from cramatte.backends import refiner_path
    from cramatte.runtime import shipped_model

    alone = tmp_path / "alone.onnx"
    shutil.copy(shipped_model(), alone)
    with pytest.raises(FileNotFoundError, match="alone.refiner.onnx"):
        Matter(alone)
    shutil.copy(shipped_model(), refiner_path(alone))  # the wrong graph in the refiner's place
    with pytest.raises(ValueError, match="not a cramatte one"):
        Matter(alone)


def test_unavailable_device_falls_back_with_a_note(caplog):
    with caplog.at_level(logging.WARNING, logger="cramatte"):
        m = Matter(device="coreml")
    assert m.providers == ["CPUExecutionProvider"]
    assert "falling back to CPU" in caplog.text


def test_torch_backend_matches_onnx(sample):
    from cramatte.runtime import shipped_model

    torch_matter = Matter(backend="torch", device="cpu")
    assert np.abs(torch_matter(sample).alpha - Matter(shipped_model())(sample).alpha).max() <= 1e-3


def test_int8_graphs_on_cpu(tmp_path, sample):
    """The shipped model runs its int8 graphs on the CPU; a fresh quantisation stays close to fp32."""
    import onnx

    from cramatte.export import quantize_int8
    from cramatte.io import write_image
    from cramatte.runtime import shipped_model

    assert Matter().model_path.name == "cramatte.int8.onnx"
    assert Matter(device="cpu").model_path.name == "cramatte.int8.onnx"
    fp32 = Matter(shipped_model())(sample).alpha
    assert np.abs(Matter()(sample).alpha - fp32).mean() < 0.03
    calib = [write_image(tmp_path / f"c{i}.png", np.roll(sample, 64 * i, axis=1) / 255.0) for i in range(2)]
    fresh = quantize_int8(shipped_model(), calib, tmp_path / "q.onnx")
    assert np.abs(Matter(fresh)(sample).alpha - fp32).mean() < 0.03
    # uint8 weights: int8 ones saturate ONNX Runtime's sums on CPUs without VNNI (AVX2 only)
    # and one zero point per weight, as the older ONNX Runtimes of Nuke's Pythons require
    for graph in (fresh, shipped_model(".int8.onnx")):
        tensors = onnx.load(graph).graph.initializer
        assert onnx.TensorProto.INT8 not in {t.data_type for t in tensors}, graph
        zero_points = [onnx.numpy_helper.to_array(t) for t in tensors if t.name.endswith("weight_zero_point")]
        assert zero_points and all(len(np.unique(z)) == 1 for z in zero_points), graph


def test_fresh_onnx_export_matches_torch(tmp_path, sample):
    """Both graphs re-exported; the ONNX runtime path (numpy region glue between two sessions) matches
    the torch network's own forward, which selects, crops and pastes in torch."""
    import cv2
    import onnx as onnx_lib
    import torch

    from cramatte.backends import refiner_path
    from cramatte.checkpoint import load_model
    from cramatte.export import export_onnx
    from cramatte.runtime import shipped_model

    weights = shipped_model(".safetensors")
    onnx = export_onnx(weights, tmp_path / "fresh.onnx")
    assert refiner_path(onnx).is_file()
    nodes = onnx_lib.load(onnx).graph.node
    assert not [n.name for n in nodes if n.op_type == "Pad"]  # folded into the stride-2 convs
    net, _ = load_model(weights)
    fast = Matter(onnx, config="realtime")
    for h, w in ((65, 97), (333, 251), (256, 320)):
        rgb = cv2.resize(sample, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        lh, lw = fast.config.internal_size(h, w)
        lr = cv2.resize(rgb, (lw, lh), interpolation=cv2.INTER_AREA)
        with torch.no_grad():
            ref = net(torch.from_numpy(rgb.transpose(2, 0, 1)[None].copy()),
                      torch.from_numpy(lr.transpose(2, 0, 1)[None].copy()),
                      torch.tensor(fast.config.regions(h, w)))[0, 0].numpy()
        got = fast.alpha(rgb[None])[0]  # frames under twice the internal size: the same resize as lr
        assert np.abs(got - ref).max() <= 1e-3


def test_missing_libraries_are_named(monkeypatch, sample, tmp_path):
    import sys

    from cramatte.io import VideoWriter

    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ImportError, match=r"PyAV \(cramatte's 'video' extra\): pip install av"):
        VideoWriter(tmp_path / "x.mov", "prores", 30, 64, 64)
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"needs PyTorch \(cramatte's 'torch' extra\): pip install torch safetensors"):
        Matter(backend="torch")
