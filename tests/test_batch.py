"""`cramatte.matte_files`, the Python face of `cramatte matte`: the same files, the same report."""
from pathlib import Path

import cv2
import pytest

import cramatte
from cramatte.cli import main
from conftest import SAMPLE
from test_cli import _video
from test_farm import tree


@pytest.fixture
def shots(tmp_path):
    """A folder holding an image, a short video and a file that only looks like an image."""
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "still.png"), cv2.resize(cv2.imread(str(SAMPLE)), (96, 64)))
    _video(folder / "clip.mp4")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


def test_matte_files_writes_what_the_cli_writes_and_reports_it(shots, tmp_path, capsys):
    outputs = ["alpha", "rgba", "composite"]
    assert main(["matte", str(shots), "-o", str(tmp_path / "cli"), "--output", *outputs,
                 "--background", "blur:5"]) == 2
    printed = capsys.readouterr()
    report = cramatte.matte_files(shots, tmp_path / "api", outputs=outputs, background="blur:5", progress=False)
    assert capsys.readouterr().out == ""  # progress=False: silent
    assert tree(tmp_path / "api") == tree(tmp_path / "cli")  # byte for byte, names included
    assert report.inputs == 3 and not report.ok and report.skipped == []
    assert report.failed == [line.strip() for line in printed.err.split("inputs failed:\n")[1].splitlines()]
    assert "broken.jpg" in report.failed[0]
    assert [p.name for p in report.written] == [Path(line).name for line in printed.out.splitlines()]
    assert sorted(p.name for p in report.written) == sorted(p.name for p in (tmp_path / "api").iterdir())


def test_matte_files_resumes_and_never_overwrites(shots, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "still_alpha.png").write_bytes(b"precious")
    report = cramatte.matte_files([shots / "still.png", shots / "clip.mp4"], out, progress=False)
    assert report.skipped == [shots / "still.png"] and report.written == [out / "clip_alpha"]
    assert (out / "still_alpha.png").read_bytes() == b"precious"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = cramatte.matte_files([shots / "clip.mp4"], out, cramatte.Job(temporal=0), progress=False)
    assert again.skipped == [shots / "clip.mp4"] and again.written == [] and again.ok
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    redo = cramatte.matte_files(shots / "still.png", out, overwrite=True, progress=False)
    assert redo.written == [out / "still_alpha.png"] and (out / "still_alpha.png").read_bytes() != b"precious"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_bad_settings_raise_before_any_work(shots, tmp_path):
    for settings, words in (({"outputs": ("alpha", "mask")}, "unknown output 'mask'"), ({"depth": 12}, "depth 12"),
                            ({"background": "blur:0"}, "blur strength"), ({"outputs": ()}, "no outputs"),
                            ({"temporal": float("nan")}, "temporal nan is out of range"),
                            ({"threads": -1}, "threads -1 is out of range")):
        with pytest.raises(ValueError, match=words):
            cramatte.matte_files(shots, tmp_path / "out", progress=False, **settings)
    for field, value in (("chunk", 0), ("retries", -1), ("gpus_per_worker", float("inf")), ("overlap", 2.5)):
        with pytest.raises(ValueError, match=f"{field} {value} is out of range"):
            cramatte.Cluster(**{field: value})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no images or videos"):
        cramatte.matte_files(empty, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
