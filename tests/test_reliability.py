"""No lost or corrupt output: hostile folders, concurrent runs, failing disks, bad inputs, bad model files."""
import errno
import json
import os
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from cramatte.cli import main
from cramatte.io import Staged
from conftest import SAMPLE


def run(*args):
    return main([str(a) for a in args])


def small(path: Path, size=(96, 64), shift: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.roll(cv2.resize(cv2.imread(str(SAMPLE)), size), shift, axis=1))
    return path


def video(path: Path, frames: int = 40, size=(96, 64), fourcc: str = "mp4v") -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, size)
    base = cv2.resize(cv2.imread(str(SAMPLE)), size)
    for i in range(frames):
        w.write(np.roll(base, i, axis=1))
    w.release()
    return path


def leftovers(folder: Path) -> list:
    """Hidden work folders or files left in an output folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def decodes(path: Path) -> bool:
    if path.is_dir():
        return all(decodes(p) for p in path.iterdir())
    if path.suffix == ".exr":
        from cramatte.io import read_exr
        try:
            read_exr(path)
            return True
        except ValueError:
            return False
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None


def test_planted_symlinks_are_never_followed(tmp_path):
    shared, victim = tmp_path / "shared", tmp_path / "victim.txt"
    shared.mkdir()
    victim.write_text("keep me")
    good = small(tmp_path / "good.png")
    # the names an older cramatte used for its temporary files, and the final name itself
    (shared / ".good_alpha.partial.png").symlink_to(victim)
    (shared / "good_rgba.png").symlink_to(victim)
    assert run("matte", good, "-o", shared, "--output", "alpha", "rgba") == 0
    assert victim.read_text() == "keep me"
    assert (shared / "good_alpha.png").is_file() and not (shared / "good_alpha.png").is_symlink()
    assert (shared / "good_rgba.png").is_symlink()  # existing: left alone without --overwrite
    assert run("matte", good, "-o", shared, "--output", "rgba", "--overwrite") == 0
    assert victim.read_text() == "keep me" and not (shared / "good_rgba.png").is_symlink()
    assert decodes(shared / "good_rgba.png")
    assert leftovers(shared) == [".good_alpha.partial.png"]  # the planted link, untouched


def test_two_runs_into_one_folder_never_corrupt(tmp_path):
    inputs = [small(tmp_path / "in" / f"f{i}.png", (160, 120), shift=i) for i in range(8)]
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cramatte.cli", "matte", str(tmp_path / "in"), "-o", str(out), "--output", "alpha",
           "rgba", "--threads", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for rc, err in results:
        assert rc in (0, 2) and "Traceback" not in err
        if rc == 2:  # the loser of a race reports the file as existing, nothing else
            lines = [l for l in err.splitlines() if l.startswith("cramatte: error:")]
            assert lines and all("exists" in l or "appeared while it was being written" in l for l in lines), err
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{p.stem}_{k}.png" for p in inputs for k in ("alpha", "rgba"))
    assert all(decodes(out / n) for n in names)


def test_nothing_overwritten_and_collisions_refused_before_work(tmp_path, capsys):
    folder = tmp_path / "in"
    small(folder / "shot.png")
    small(folder / "shot.jpg")
    assert run("matte", folder, "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "same output" in err and "shot.png" in err and "shot.jpg" in err
    assert not (tmp_path / "out").exists()
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert run("export", "-o", notes) == 2
    assert ".onnx" in capsys.readouterr().err and notes.read_text() == "mine"
    model = tmp_path / "model.onnx"
    model.write_text("an older model")
    assert run("export", "-o", model) == 2
    assert "exists" in capsys.readouterr().err and model.read_text() == "an older model"
    assert not (tmp_path / "model.refiner.onnx").exists() and leftovers(tmp_path) == []


def test_folder_run_goes_on_lists_failures_and_resumes(tmp_path, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    small(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG garbage")
    small(folder / "c.png", shift=5)
    assert run("matte", folder, "-o", out) == 2
    err = capsys.readouterr().err
    assert "1 of 3 inputs failed" in err and "b.png" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["a_alpha.png", "c_alpha.png"]
    before = (out / "a_alpha.png").stat().st_mtime_ns
    small(folder / "b.png", shift=9)
    assert run("matte", folder, "-o", out) == 0  # a resume: a and c are skipped, b is done
    assert "2 of 3 inputs were done already" in capsys.readouterr().out
    assert (out / "a_alpha.png").stat().st_mtime_ns == before and decodes(out / "b_alpha.png")


def test_truncated_inputs_are_errors_naming_the_file(tmp_path, capsys):
    jpg = small(tmp_path / "cut.jpg", (320, 240))
    jpg.write_bytes(jpg.read_bytes()[:len(jpg.read_bytes()) // 2])
    assert run("matte", jpg, "-o", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "cut.jpg" in err and "truncated" in err
    clip = video(tmp_path / "clip.mkv", fourcc="MJPG")
    clip.write_bytes(clip.read_bytes()[:len(clip.read_bytes()) // 4])
    assert run("matte", clip, "-o", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "clip.mkv" in err and "of 40 frames" in err
    assert not (tmp_path / "o" / "clip_alpha").exists() and leftovers(tmp_path / "o") == []


def _cut_with_end_marker(path: Path, progressive: bool) -> None:
    jpg = cv2.imencode(".jpg", cv2.resize(cv2.imread(str(SAMPLE)), (320, 240)),
                       [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])[1].tobytes()
    path.write_bytes(jpg[:len(jpg) * 2 // 3] + b"\xff\xd9")


DAMAGED = [  # name, how it is made, what the error says
    ("cut.jpg", lambda p: _cut_with_end_marker(p, False), "Corrupt JPEG data: premature end of data segment"),
    ("cut_progressive.jpeg", lambda p: _cut_with_end_marker(p, True), "Corrupt JPEG data"),
    ("empty.png", lambda p: p.write_bytes(b""), "empty file"),
    ("empty.exr", lambda p: p.write_bytes(b""), "empty file"),
    ("notes.png", lambda p: p.write_text("not a picture at all"), "not an image"),
    ("notes.jpg", lambda p: p.write_bytes(b"\0" * 300), "not an image"),
]


@pytest.mark.parametrize("name, make, why", DAMAGED, ids=[d[0] for d in DAMAGED])
def test_damaged_images_are_one_line_naming_the_file_and_what_is_wrong(tmp_path, capfd, name, make, why):
    """A JPEG cut short with its end marker put back decodes with blank rows and only a libjpeg warning
    (no file name) on stderr: it is an error instead. Empty and non-image files are called that."""
    path = tmp_path / name
    make(path)
    assert run("matte", path, "-o", tmp_path / "o") == 2
    err = capfd.readouterr().err
    assert err.startswith(f"cramatte: error: cannot read image {path}: {why}") and "Traceback" not in err, err
    assert all(str(path) in line for line in err.splitlines() if "cannot" in line or "orrupt" in line), err
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []

def _failing(code: int):
    """A stand-in for os.link or os.replace that fails with `code`, as such a file system does."""
    def call(src, dst, **_):
        raise OSError(code, os.strerror(code), os.fspath(src), None, os.fspath(dst))
    return call


@pytest.mark.parametrize("code", [errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV], ids=["EPERM", "EOPNOTSUPP", "EXDEV"])
def test_file_systems_without_hard_links_still_get_outputs(tmp_path, monkeypatch, capsys, code):
    """FAT, exFAT and some shares refuse hard links: outputs appear all the same, a rerun resumes, and a
    file that appears while an output is written is still never replaced."""
    monkeypatch.setattr(os, "link", _failing(code))
    folder, out = tmp_path / "in", tmp_path / "out"
    for i in range(2):
        small(folder / f"f{i}.png", shift=i)
    assert run("matte", folder, "-o", out, "--output", "alpha", "rgba") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["f0_alpha.png", "f0_rgba.png", "f1_alpha.png", "f1_rgba.png"]
    assert all(decodes(out / n) for n in names)
    assert run("matte", folder, "-o", out, "--output", "alpha", "rgba") == 0
    assert "2 of 2 inputs were done already" in capsys.readouterr().out
    for planted in ("file", "symlink"):
        staged = Staged(out / f"late_{planted}.png")
        staged.tmp.write_bytes(b"ours")
        if planted == "file":
            (out / "late_file.png").write_bytes(b"theirs")
        else:
            (out / "late_symlink.png").symlink_to(tmp_path / "victim")
        with pytest.raises(FileExistsError, match="appeared while it was being written"):
            staged.publish()
    assert (out / "late_file.png").read_bytes() == b"theirs" and not (tmp_path / "victim").exists()
    assert leftovers(out) == []


def test_without_hard_links_one_of_racing_writers_wins_and_a_failed_rename_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "link", _failing(errno.EPERM))
    for round in range(40):
        path, won = tmp_path / f"r{round}.bin", []
        stages = [Staged(path) for _ in range(4)]
        for i, staged in enumerate(stages):
            staged.tmp.write_bytes(bytes([i]) * 200_000)
        start = threading.Barrier(len(stages))

        def publish(i):
            start.wait()
            try:
                stages[i].publish()
                won.append(i)
            except FileExistsError:
                pass
        threads = [threading.Thread(target=publish, args=(i,)) for i in range(len(stages))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(won) == 1 and path.read_bytes() == bytes([won[0]]) * 200_000
    staged = Staged(tmp_path / "full.bin")
    staged.tmp.write_bytes(b"x")
    monkeypatch.setattr(os, "replace", _failing(errno.ENOSPC))
    with pytest.raises(OSError, match="No space"):
        staged.publish()
    assert not os.path.lexists(tmp_path / "full.bin") and leftovers(tmp_path) == []

def _limited(limit_bytes: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


@pytest.mark.parametrize("args", [["--format", "exr"], ["--video-codec", "prores", "--output", "rgba"],
                                  ["--video-codec", "png", "--output", "rgba", "--depth", "16"]])
def test_full_disk_leaves_nothing_behind(tmp_path, args):
    clip = video(tmp_path / "clip.mp4", frames=12, size=(160, 120))
    src = clip if "--format" not in args else small(tmp_path / "big.png", (640, 480))
    out = tmp_path / "out"
    out.mkdir()
    res = subprocess.run([sys.executable, "-m", "cramatte.cli", "matte", str(src), "-o", str(out), *args],
                         capture_output=True, text=True, preexec_fn=_limited(20_000), timeout=300)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "could not write" in res.stderr and src.name in res.stderr
    assert list(out.iterdir()) == []


def test_read_only_folder_is_one_clear_line(tmp_path, capsys):
    if os.geteuid() == 0:
        ro = Path("/proc/cramatte-not-writable")  # root writes anywhere chmod allows: use a folder nobody can
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
    assert run("matte", small(tmp_path / "a.png"), "-o", ro, "--format", "exr") == 2
    err = capsys.readouterr().err
    assert "cannot write into" in err and "Traceback" not in err


def _model_files(tmp_path: Path, rng) -> list:
    """Corrupt and hostile model files: (path, backend)."""
    from safetensors.numpy import save_file

    from cramatte.model.configs import ARCH
    from cramatte.runtime import shipped_model

    files = []
    onnx = shipped_model().read_bytes()
    for i in range(6):
        bad = bytearray(onnx[:rng.integers(16, 4096)])
        bad[rng.integers(0, len(bad))] ^= 0xFF
        path = tmp_path / f"cut{i}.onnx"
        path.write_bytes(bytes(bad))
        files.append((path, "onnx"))
    huge = json.loads(json.dumps(ARCH))
    huge["lowres"].update(dim=8192, depth=64)
    unknown = {**ARCH, "vision": {"dim": 3}}
    for name, arch in (("huge", huge), ("unknown", unknown), ("shapes", ARCH)):
        path = tmp_path / f"{name}.safetensors"
        save_file({"lowres.trunk.stem.0.weight": np.zeros((2, 2), np.float32)}, str(path),
                  metadata={"format": "cramatte-1", "arch": json.dumps(arch)})
        files.append((path, "torch"))
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(rng.integers(0, 255, 300, dtype=np.uint8).tobytes())
    files.append((garbage, "torch"))
    return files


def _malformed_images(folder: Path, rng, count: int) -> None:
    good_png = cv2.imencode(".png", cv2.resize(cv2.imread(str(SAMPLE)), (64, 48)))[1].tobytes()
    good_jpg = cv2.imencode(".jpg", cv2.resize(cv2.imread(str(SAMPLE)), (64, 48)))[1].tobytes()
    for i in range(count):
        kind = i % 6
        ext, data = (".png", good_png) if i % 2 else (".jpg", good_jpg)
        if kind == 0:
            data = rng.integers(0, 255, rng.integers(0, 2000), dtype=np.uint8).tobytes()
        elif kind == 1:
            data = data[:rng.integers(1, len(data) - 1)]
        elif kind == 2:
            data = bytearray(data)
            for j in rng.integers(8, len(data) - 16, 8):
                data[j] ^= 0xFF
            data = bytes(data)
        elif kind == 3:
            data = cv2.imencode(ext, np.zeros((int(rng.integers(1, 16)), int(rng.integers(1, 40)), 3), np.uint8))[1].tobytes()
        elif kind == 4:
            data = b""
        else:
            data = cv2.imencode(".png", np.zeros((20, 20, 2), np.uint8)[..., :1])[1].tobytes() if i % 2 else data[:12]
        (folder / f"m{i:03d}{ext}").write_bytes(data)


def test_fuzz_images_settings_and_models(tmp_path, capsys):
    rng = np.random.default_rng(1234)
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    _malformed_images(folder, rng, 240)
    for i in range(3):
        small(folder / f"ok{i}.png", shift=i)
    (folder / "v0.mp4").write_bytes(rng.integers(0, 255, 5000, dtype=np.uint8).tobytes())
    clip = video(folder / "v1.avi", frames=20, fourcc="MJPG")
    clip.write_bytes(clip.read_bytes()[:len(clip.read_bytes()) // 3])
    assert run("matte", folder, "-o", out, "--output", "alpha", "rgba") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    failed = [line.strip() for line in err.split("inputs failed:")[1].splitlines() if line.strip()]
    for line in failed:  # every failure names its input
        assert str(folder) in line
    for path in out.iterdir():  # whatever has a final name decodes
        assert not path.name.startswith(".") and decodes(path), path
    for i in range(3):
        assert (out / f"ok{i}_alpha.png").exists()
    assert len(failed) >= 150

    specs = ["colour:#zz", "colour:1,2", "colour:#GGGGGG", "blur:abc", "blur:0", "blur:-3", "blur:1e9", "image:/nonexistent",
             "nothing", "colour:#00ff0", "blur:nan", "colour:0.5,0.5,9"]
    for spec in specs:
        rc = run("matte", SAMPLE, "-o", tmp_path / "s", "--output", "composite", "--background", spec)
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err and err.startswith("cramatte: error:"), spec
    for threads in ("-1", "100000"):
        rc = run("matte", SAMPLE, "-o", tmp_path / f"t{threads}", "--threads", threads)
        capsys.readouterr()
        assert rc == (2 if threads == "-1" else 0)

    for path, backend in _model_files(tmp_path, rng):
        rc = run("matte", SAMPLE, "-o", tmp_path / "m", "--model", path, "--backend", backend)
        err = capsys.readouterr().err
        assert rc == 2 and str(path) in err and "Traceback" not in err, err
    assert not (tmp_path / "m").exists() or list((tmp_path / "m").iterdir()) == []


def test_hostile_model_metadata_is_refused_before_allocation(tmp_path):
    from safetensors.numpy import save_file

    from cramatte.checkpoint import load_model
    from cramatte.model.configs import ARCH

    arch = json.loads(json.dumps(ARCH))
    arch["lowres"].update(dim=8192, depth=64)
    path = tmp_path / "huge.safetensors"
    save_file({"x": np.zeros(1, np.float32)}, str(path), metadata={"format": "cramatte-1", "arch": json.dumps(arch)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="outside"):
        load_model(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KB: nothing was built
    save_file({"x": np.zeros(1, np.float32)}, str(path), metadata={"format": "cramatte-1", "arch": json.dumps(ARCH)})
    with pytest.raises(ValueError, match="does not match"):
        load_model(path)


@pytest.mark.parametrize("depth", [900, 200_000])
def test_deeply_nested_model_metadata_is_one_short_line(tmp_path, capsys, depth):
    from safetensors.numpy import save_file

    path = tmp_path / "deep.safetensors"
    arch = '{"lowres": {"decoder": ' + "[" * depth + "]" * depth + "}}"
    save_file({"x": np.zeros(1, np.float32)}, str(path), metadata={"format": "cramatte-1", "arch": arch})
    assert run("matte", SAMPLE, "-o", tmp_path / "o", "--model", path, "--backend", "torch") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cramatte: error: {path} ") and err.count("\n") == 1 and len(err) < 300, err[:500]

def test_threads_clamped_and_cache_private(tmp_path, monkeypatch):
    from cramatte.backends import _cores, clamp_threads
    from cramatte.cache import user_cache

    assert clamp_threads(100000) == _cores() and clamp_threads(None) == _cores() and clamp_threads(1) == 1
    with pytest.raises(ValueError):
        clamp_threads(-2)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = user_cache("nuke")
    assert folder.is_dir() and str(folder).startswith(str(tmp_path / "xdg"))
    assert (folder.stat().st_mode & 0o777) == 0o700 and (folder.parent.stat().st_mode & 0o777) == 0o700


def test_batch_is_chunked_and_equals_single_frames(matter, sample):
    frames = np.stack([np.roll(sample, 7 * i, axis=1) for i in range(matter.CHUNK + 3)])
    batch = matter(frames, foreground=True)
    assert batch.alpha.shape == frames.shape[:3] and batch.foreground.shape == frames.shape
    for i in (0, matter.CHUNK, len(frames) - 1):
        one = matter(frames[i], foreground=True)
        assert np.abs(one.alpha - batch.alpha[i]).max() < 1e-5
        assert np.abs(one.foreground - batch.foreground[i]).max() < 1e-4


def test_eval_without_the_train_extra_names_it(monkeypatch, capsys):
    for name in [m for m in sys.modules if m.startswith(("cramatte.evaluate", "cramatte.train"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pymatting", None)
    assert run("eval", "--data", "nowhere") == 2
    err = capsys.readouterr().err
    assert "'train' extra" in err and "pip install -e '.[train]'" in err


def _matte_until_frames(clip: Path, out: Path) -> subprocess.Popen:
    """`cramatte matte CLIP` in a child, returned once its private sequence folder holds frames."""
    proc = subprocess.Popen([sys.executable, "-m", "cramatte.cli", "matte", str(clip), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None and not list(out.glob(".clip_alpha.*.partial/*.png")):
        threading.Event().wait(0.05)
    assert proc.poll() is None, proc.communicate()
    return proc


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_video_is_one_line_its_exit_code_and_no_debris(tmp_path, sig, code):
    clip, out = video(tmp_path / "clip.mp4", frames=400), tmp_path / "out"
    proc = _matte_until_frames(clip, out)
    proc.send_signal(sig)
    stdout, err = proc.communicate(timeout=120)
    said = [line for line in err.splitlines() if line.strip() and "frame/s]" not in line]  # not the bar
    assert proc.returncode == code and len(said) == 1 and "rerun the same command" in said[0], err
    assert list(out.iterdir()) == []


def test_a_rerun_removes_what_a_killed_run_left(tmp_path):
    clip, out = video(tmp_path / "clip.mp4", frames=400), tmp_path / "out"
    proc = _matte_until_frames(clip, out)
    proc.kill()
    proc.wait()
    assert leftovers(out)  # SIGKILL: nothing could clean up
    holder = Staged(out / "busy.png")  # a living writer's private folder stays
    assert run("matte", video(tmp_path / "short.mp4", frames=3), "-o", out) == 0
    assert leftovers(out) == [holder.private.name] and sorted(p.name for p in out.iterdir() if p.name[0] != ".") == ["short_alpha"]
    holder.discard()
