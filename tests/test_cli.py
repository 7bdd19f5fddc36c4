"""The `cramatte` command on images, folders and videos, as a user runs it."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from cramatte.cli import main
from cramatte.io import read_exr
from conftest import SAMPLE, person_and_corners


def run(*args):
    return main([str(a) for a in args])


def test_matte_sample_writes_a_real_matte(tmp_path, capsys):
    assert run("matte", SAMPLE, "-o", tmp_path) == 0
    alpha = cv2.imread(str(tmp_path / "astronaut_alpha.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.shape == (512, 512) and alpha.dtype == np.uint8
    body, corners = person_and_corners(alpha / 255)
    assert body > 0.9 and corners < 0.1


def test_outputs_rgba_composite_16bit_and_exr(tmp_path):
    assert run("matte", SAMPLE, "-o", tmp_path, "--output", "alpha", "rgba", "premultiplied", "composite",
               "--background", "colour:#0000ff", "--depth", "16") == 0
    alpha = cv2.imread(str(tmp_path / "astronaut_alpha.png"), cv2.IMREAD_UNCHANGED)
    rgba = cv2.imread(str(tmp_path / "astronaut_rgba.png"), cv2.IMREAD_UNCHANGED)
    comp = cv2.imread(str(tmp_path / "astronaut_composite.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.dtype == np.uint16 and rgba.shape == (512, 512, 4) and comp.shape == (512, 512, 3)
    assert np.array_equal(rgba[..., 3], alpha)
    assert comp[5, 500, 0] > 60000 and comp[5, 500, 2] < 5000  # top-right corner shows the blue (BGR order)
    assert run("matte", SAMPLE, "-o", tmp_path / "exr", "--format", "exr") == 0
    exr = read_exr(tmp_path / "exr" / "astronaut_alpha.exr")
    assert exr.dtype == np.float32 and np.abs(exr - alpha / 65535).max() < 1e-3


def test_never_overwrites(tmp_path, capsys):
    out = tmp_path / "astronaut_alpha.png"
    out.write_bytes(b"precious")
    assert run("matte", SAMPLE, "-o", tmp_path) == 0  # done already: skipped, as a resume
    assert "done already" in capsys.readouterr().out
    assert out.read_bytes() == b"precious"
    assert run("matte", SAMPLE, "-o", tmp_path, "--overwrite") == 0
    assert out.read_bytes() != b"precious"


def test_input_is_never_an_output(tmp_path, capsys):
    img = tmp_path / "me_alpha.png"
    img.write_bytes(SAMPLE.read_bytes())
    assert run("matte", img, "-o", tmp_path, "--overwrite") == 0  # writes me_alpha_alpha.png
    clash = tmp_path / "me.png"
    clash.write_bytes(SAMPLE.read_bytes())
    before = img.read_bytes()
    assert run("matte", clash, img, "-o", tmp_path, "--overwrite") == 2
    assert "is an input" in capsys.readouterr().err and img.read_bytes() == before


def test_folder_and_bad_inputs(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(folder / name), cv2.resize(cv2.imread(str(SAMPLE)), (96, 64)))
    (folder / "notes.txt").write_text("not an image")
    assert run("matte", folder, "-o", tmp_path / "out") == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_alpha.png", "b_alpha.png"]
    assert run("matte", tmp_path / "missing.png", "-o", tmp_path) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    assert run("matte", bad, "-o", tmp_path / "o2") == 2
    assert "cannot read image" in capsys.readouterr().err


def _video(path, frames=6, size=(96, 64)):
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    base = cv2.resize(cv2.imread(str(SAMPLE)), size)
    for i in range(frames):
        w.write(np.roll(base, i, axis=1))
    w.release()
    return path


@pytest.mark.parametrize("codec,expect", [("png", "clip_alpha"), ("prores", "clip_rgba.mov"), ("vp9", "clip_rgba.webm")])
def test_video_outputs(tmp_path, codec, expect):
    clip = _video(tmp_path / "clip.mp4")
    outputs = ["alpha"] if codec == "png" else ["rgba"]
    assert run("matte", clip, "-o", tmp_path / "out", "--video-codec", codec, "--output", *outputs) == 0
    target = tmp_path / "out" / expect
    if codec == "png":
        assert sorted(p.name for p in target.iterdir()) == [f"{i:06d}.png" for i in range(6)]
        return
    import av

    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        # ffmpeg's own VP9 decoder drops alpha; libvpx's keeps it
        decoder = av.CodecContext.create("libvpx-vp9", "r") if codec == "vp9" else stream.codec_context
        frames = [f for packet in container.demux(stream) for f in decoder.decode(packet)]
    assert len(frames) == 6 and (frames[0].width, frames[0].height) == (96, 64)
    assert frames[0].format.name.startswith("yuva")  # a pixel format with alpha


def test_info_lists_model_backend_and_providers(capsys):
    assert run("info") == 0
    text = capsys.readouterr().out
    for word in ("model:", "cramatte.int8.onnx", "backend:    onnx", "CPUExecutionProvider", "realtime"):
        assert word in text


def test_console_script_installed():
    res = subprocess.run([sys.executable, "-m", "cramatte.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "matte" in res.stdout


BAD_NUMBERS = [  # command, option, value
    ("matte", "--temporal", "nan"), ("matte", "--temporal", "inf"), ("matte", "--temporal", "5"),
    ("matte", "--temporal", "-1"), ("matte", "--threads", "-3"),
    ("farm", "--chunk", "0"), ("farm", "--overlap", "-1"), ("farm", "--retries", "-2"), ("farm", "--workers", "-1"),
    ("farm", "--cpus-per-worker", "0"), ("farm", "--gpus-per-worker", "nan"), ("farm", "--temporal", "nan"),
    ("train", "--lr", "nan"), ("train", "--real-prob", "2"), ("train", "--batch", "0"), ("train", "--steps", "-5"),
    ("eval", "--limit", "-1"), ("export", "--calibration-images", "0"), ("obs", "--port", "70000"),
]


@pytest.mark.parametrize("command, option, value", BAD_NUMBERS, ids=[" ".join(b) for b in BAD_NUMBERS])
def test_numeric_options_out_of_range_are_one_line_naming_the_option(tmp_path, capsys, command, option, value):
    """`--temporal nan` once gave blank mattes after the first frame (exit 0); every numeric option is
    range-checked before any work, the Python API's `Job` and `Cluster` included."""
    args = {"matte": [SAMPLE, "-o", tmp_path / "o"], "farm": [SAMPLE, "-o", tmp_path / "o"],
            "train": ["realtime", "--data", tmp_path, "--out", tmp_path / "o"], "eval": ["--data", tmp_path],
            "export": ["--int8", tmp_path, "-o", tmp_path / "o.onnx"], "obs": ["add", "--source", "cam"]}[command]
    assert run(command, *args, option, value) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cramatte: error: {option} ") and "out of range" in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_a_folder_matted_into_itself_resumes(tmp_path, capsys):
    """Outputs beside their inputs are outputs on a rerun, not inputs (that refused: "is an input")."""
    folder = tmp_path / "shots"
    folder.mkdir()
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(folder / name), cv2.resize(cv2.imread(str(SAMPLE)), (96, 64)))
    _video(folder / "clip.mp4")
    assert run("matte", folder, "-o", folder, "--output", "alpha", "rgba") == 0
    made = sorted(p.name for p in folder.iterdir())
    assert made == ["a.png", "a_alpha.png", "a_rgba.png", "b.jpg", "b_alpha.png", "b_rgba.png", "clip.mp4",
                    "clip_alpha", "clip_rgba"]
    capsys.readouterr()
    assert run("matte", folder, "-o", folder, "--output", "alpha", "rgba") == 0
    assert "3 of 3 inputs were done already" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == made


def test_a_rerun_with_other_options_never_mixes_outputs(tmp_path, capsys):
    """A folder run stopped after some images with --depth 16, rerun without it: refused, naming the
    option (it once went on in 8 bits beside the 16-bit files). The same options resume; --overwrite
    replaces everything."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / name), cv2.resize(cv2.imread(str(SAMPLE)), (96, 64)))
    assert run("matte", folder / "a.png", "-o", out, "--depth", "16") == 0  # the run that stopped
    assert run("matte", folder, "-o", out) == 2
    err = capsys.readouterr().err
    assert err == f"cramatte: error: {out / 'a_alpha.png'} was made with --depth 16, this run asks for --depth 8: " \
                  "rerun with the same options, or --overwrite to replace it\n"
    assert not (out / "b_alpha.png").exists()
    assert run("matte", folder, "-o", out, "--depth", "16") == 0
    assert {cv2.imread(str(p), cv2.IMREAD_UNCHANGED).dtype for p in out.iterdir()} == {np.dtype("uint16")}
    assert run("matte", folder, "-o", out, "--overwrite") == 0
    assert {cv2.imread(str(p), cv2.IMREAD_UNCHANGED).dtype for p in out.iterdir()} == {np.dtype("uint8")}
