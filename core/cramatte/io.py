"""Reading and writing images and videos; writes are atomic and replace an existing file only when asked
(`overwrite`)."""
from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import simplejpeg

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a killed run's private folders stay for the user
    fcntl = None

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr"}
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
NOTE = "cramatte"  # the PNG text chunk's keyword and the EXR header attribute that hold a note
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def expand_inputs(inputs) -> list:
    """Files given directly, plus the images and videos directly inside any folder given."""
    out = []
    for item in map(Path, inputs):
        if item.is_dir():
            out += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_EXTS | VIDEO_EXTS)
        elif item.is_file():
            out.append(item)
        else:
            raise FileNotFoundError(f"input not found: {item}")
    return out


def is_video(path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


def read_exr(path) -> np.ndarray:
    """HxW (single channel) or HxWx{3,4} float32 pixels of an OpenEXR file."""
    import OpenEXR

    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ValueError(f"cannot read image {path}: empty file")
    try:
        with OpenEXR.File(os.fspath(path)) as f:
            channels = {name: ch.pixels for name, ch in f.channels().items()}
    except Exception as e:  # OpenEXR raises RuntimeError and friends for corrupt files
        raise ValueError(f"cannot read image {path} ({e})") from None
    for name in ("RGBA", "RGB", "A", "Y"):
        if name in channels:
            return channels[name].astype(np.float32)
    raise ValueError(f"{path} has no RGB, RGBA, A or Y channels (has {', '.join(channels)})")


def write_exr(path, pixels: np.ndarray, note: str = "") -> None:
    """Float EXR (ZIP): HxW as channel A (a matte), HxWx3 as RGB, HxWx4 as RGBA; a `note` goes into the
    header as the string attribute `cramatte`."""
    import OpenEXR

    name = {2: "A"}.get(pixels.ndim) or {3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **({NOTE: note} if note else {})}
    with OpenEXR.File(header, {name: np.ascontiguousarray(pixels, np.float32)}) as f:
        f.write(os.fspath(path))


def read_image(path) -> tuple:
    """(HxWx{3,4} RGB(A) array in its file's dtype, colorspace): EXR is float32 linear, others sRGB."""
    if Path(path).suffix.lower() == ".exr":
        img = read_exr(path)
        return (np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img), "linear"
    try:
        data = np.fromfile(os.fspath(path), np.uint8)
    except OSError as e:
        raise ValueError(f"cannot read image {path} ({e.strerror or e})") from None
    if not data.size:
        raise ValueError(f"cannot read image {path}: empty file")
    kind = _check_complete(path, data)
    img = _decode_jpeg(path, data) if kind == "JPEG" else cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        why = f"corrupt or unsupported {kind or 'image'}" if cv2.haveImageReader(os.fspath(path)) else "not an image"
        raise ValueError(f"cannot read image {path}: {why}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    elif kind != "JPEG":  # OpenCV's BGR(A)
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    if img.dtype not in (np.uint8, np.uint16):
        img = img.astype(np.float32)
    return img, "srgb"


def _unit(img: np.ndarray) -> np.ndarray:
    """An image in its file's dtype as float32 in [0, 1]."""
    return img.astype(np.float32) / np.float32(np.iinfo(img.dtype).max if img.dtype.kind in "ui" else 1)


def read_rgb(path) -> np.ndarray:
    """HxWx3 uint8 sRGB of an image file (alpha dropped, 16 bits scaled down)."""
    img = read_image(path)[0][..., :3]
    return img if img.dtype == np.uint8 else quantize(_unit(img), 8)


def read_alpha(path) -> np.ndarray:
    """HxW float32 in [0, 1] of a matte file: its alpha channel if it has one, else its first channel."""
    img = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read alpha {path}")
    if img.ndim == 3:
        img = img[..., 3] if img.shape[2] == 4 else img[..., 0]
    return _unit(img)


def read_cutout(path) -> tuple:
    """(HxWx3 uint8 sRGB, HxW float32 alpha) of an RGBA cut-out."""
    img = read_image(path)[0]
    if img.ndim != 3 or img.shape[2] != 4:
        raise ValueError(f"{path} is not an RGBA image")
    rgb = img[..., :3]
    return (rgb if rgb.dtype == np.uint8 else quantize(_unit(rgb), 8)), _unit(img[..., 3])


def _check_complete(path, data: np.ndarray):
    """"JPEG" or "PNG" by the file's signature (else None). One of those cut short decodes with blank
    rows and only a library warning: refuse it instead."""
    head, tail = data[:8].tobytes(), data[-64:].tobytes()
    if head.startswith(b"\xff\xd8\xff"):
        if not tail.rstrip(b"\0\r\n ").endswith(b"\xff\xd9"):
            raise ValueError(f"cannot read image {path}: truncated JPEG (no end-of-image marker)")
        return "JPEG"
    if head == PNG_SIGNATURE:
        if b"IEND" not in tail[-16:]:
            raise ValueError(f"cannot read image {path}: truncated PNG (no end chunk)")
        return "PNG"
    return None


def _decode_jpeg(path, data: np.ndarray) -> np.ndarray:
    """RGB pixels of a JPEG through libjpeg-turbo (simplejpeg, strict): unlike OpenCV, which only prints
    libjpeg's warnings about corrupt data (a file cut short with its end marker put back decodes with
    blank rows), it makes them errors, here naming the file."""
    try:
        return simplejpeg.decode_jpeg(data, "RGB", strict=True)
    except ValueError as e:
        raise ValueError(f"cannot read image {path}: {e}") from None


def quantize(x: np.ndarray, depth: int) -> np.ndarray:
    scale = (1 << depth) - 1
    return (np.clip(x, 0, 1) * scale + 0.5).astype(np.uint8 if depth == 8 else np.uint16)


class Staged:
    """A file or folder written in private, then published under its final name.

    The work happens in a fresh folder (mode 0700, random name) beside the destination, so no other user
    can plant a name or a symlink in it. `publish()` moves the result to `path` atomically and never
    replaces anything that exists there, even one that appeared meanwhile, unless `overwrite`;
    `discard()` (or any error inside a `with` block) leaves nothing behind. A file appears through a
    hard link; where the file system has none (FAT, exFAT, some shares) the name is first claimed by an
    exclusive create, then the finished file is renamed over that claim. The private folder is locked
    while its writer lives, so a later run removes one that a killed writer left (`remove_abandoned`).
    """

    def __init__(self, path, overwrite: bool = False, folder: bool = False):
        self.path, self.overwrite, self.folder = Path(path), overwrite, folder
        if os.path.lexists(self.path) and not overwrite:
            raise FileExistsError(f"{self.path} exists; refusing to overwrite it (use --overwrite)")
        parent = self.path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.private, self.held = _held_folder(parent, f".{self.path.name}.")
        except FileExistsError:
            raise NotADirectoryError(f"cannot write into {parent}: it is a file, not a folder") from None
        except OSError as e:
            raise OSError(f"cannot write into {parent}: {e.strerror or e}") from None
        self.tmp = self.private if folder else self.private / self.path.name

    def publish(self) -> Path:
        try:
            if self.folder:
                self._publish_folder()
            elif self.overwrite:
                os.replace(self.tmp, self.path)  # replaces a symlink itself, never what it points to
            else:
                self._publish_file()
        except FileExistsError:
            raise FileExistsError(f"{self.path} appeared while it was being written; left as it is") from None
        finally:
            self.discard()
        return self.path

    def _publish_file(self) -> None:
        try:
            os.link(self.tmp, self.path)  # atomic, and fails if the name exists (symlinks included)
        except FileExistsError:
            raise
        except OSError:  # no hard links on this file system (EPERM, ENOTSUP, ...)
            self._claim_and_rename()

    def _claim_and_rename(self) -> None:
        """Create `path` exclusively (it fails if the name exists, a symlink included), then rename the
        finished file over that empty claim; a failed rename removes the claim."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            claim = os.fstat(fd)
        finally:
            os.close(fd)
        try:
            os.replace(self.tmp, self.path)
        except BaseException:
            _remove_if_same(self.path, claim)
            raise

    def _publish_folder(self) -> None:
        os.chmod(self.tmp, 0o777 & ~_UMASK)
        if os.path.lexists(self.path) and not self.overwrite:
            raise FileExistsError(self.path)
        rename_folder(self.tmp, self.path)

    def discard(self) -> None:
        shutil.rmtree(self.private, ignore_errors=True)
        if self.held is not None:
            os.close(self.held)
            self.held = None

    def __enter__(self) -> Path:
        return self.tmp

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.publish()
        else:
            self.discard()


def _held_folder(parent: Path, prefix: str) -> tuple:
    """(a fresh private folder `PREFIX<random>.partial` in `parent`, an open descriptor holding an
    exclusive lock on it while this writer lives, or None without locks): `remove_abandoned` removes
    only folders that no living writer holds."""
    while True:
        folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=".partial", dir=parent))
        if fcntl is None:
            return folder, None
        fd = os.open(folder, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:  # not removed as abandoned between its creation and the lock
            return folder, fd
        os.close(fd)


def remove_abandoned(folder) -> None:
    """Remove the private folders (`.NAME.<random>.partial`) that writers killed outright (SIGKILL, a
    lost machine) left in `folder`: this user's, and held by no living writer."""
    if fcntl is None or not os.path.isdir(folder):
        return
    for entry in os.scandir(folder):
        if not (entry.name.startswith(".") and entry.name.endswith(".partial")):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:  # not a folder, a symlink, or gone
            continue
        try:
            if os.fstat(fd).st_uid == os.getuid():
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:  # a living writer holds it
            pass
        finally:
            os.close(fd)


def _remove_if_same(path: Path, stat: os.stat_result) -> None:
    """Remove `path` if it is still the file `stat` describes (an empty claim this process made)."""
    try:
        now = os.lstat(path)
        if (now.st_dev, now.st_ino) == (stat.st_dev, stat.st_ino):
            os.unlink(path)
    except OSError:
        pass


def rename_folder(folder: Path, final: Path) -> None:
    """Give `folder` the name `final`; a folder or file already there (an --overwrite) is moved aside
    first, then removed, so the name never holds a mix of old and new files."""
    if os.path.lexists(final):
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
        os.replace(final, old / "old")
        os.rename(folder, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(folder, final)


def _written(path: Path, write) -> None:
    """Run `write()`, turning a failure (disk full, read-only, codec) into an OSError that names `path`."""
    try:
        ok = write()
    except Exception as e:
        raise OSError(f"could not write {path}: {e}") from None
    if ok is False:
        raise OSError(f"could not write {path} (disk full or not writable?)")


def write_image(path, pixels: np.ndarray, depth: int = 8, overwrite: bool = False, staged: bool = True,
                note: str = "") -> Path:
    """Write HxW, HxWx3 or HxWx4 float pixels in [0, 1] as 8/16-bit PNG (or TIFF), or float EXR, with
    an ASCII `note` in PNG and EXR files (`read_note`).
    `staged` (default): through `Staged`, so the file appears whole under its name or not at all; without
    it the file is written in place (inside a folder that is itself staged)."""
    path = Path(path)
    if staged:
        with Staged(path, overwrite) as tmp:
            write_image(tmp, pixels, depth, staged=False, note=note)
        return path
    if path.suffix.lower() == ".exr":
        _written(path, lambda: write_exr(path, pixels, note))
        return path
    data = quantize(pixels, depth)
    if data.ndim == 3:
        data = cv2.cvtColor(data, cv2.COLOR_RGBA2BGRA if data.shape[2] == 4 else cv2.COLOR_RGB2BGR)

    def write() -> bool:
        ok, encoded = cv2.imencode(path.suffix, data)
        if ok:
            path.write_bytes(_with_note(encoded.tobytes(), note) if note and path.suffix.lower() == ".png"
                             else encoded.tobytes())
        return ok
    _written(path, write)
    return path


def _with_note(png: bytes, note: str) -> bytes:
    """The PNG with a text chunk holding `note` right after its header chunk (signature + IHDR: 33 bytes)."""
    body = b"tEXt" + NOTE.encode() + b"\0" + note.encode("ascii")
    return png[:33] + struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body)) + png[33:]


def read_note(path) -> str | None:
    """The note `write_image` put in a PNG or EXR file; None for other files and files without one."""
    try:
        if Path(path).suffix.lower() == ".exr":
            import OpenEXR

            with OpenEXR.File(os.fspath(path), header_only=True) as f:
                note = f.header().get(NOTE)
            return note if isinstance(note, str) else None
        with open(path, "rb") as f:
            head = f.read(4096)
    except Exception:  # unreadable, or not an EXR (OpenEXR raises RuntimeError and friends)
        return None
    pos = len(PNG_SIGNATURE) if head.startswith(PNG_SIGNATURE) else len(head)
    while pos + 8 <= len(head):
        length, kind = struct.unpack(">I4s", head[pos:pos + 8])
        data = head[pos + 8:pos + 8 + length]
        if kind == b"tEXt" and data.startswith(NOTE.encode() + b"\0"):
            return data[len(NOTE) + 1:].decode("ascii", "replace")
        if kind == b"IDAT":
            break
        pos += 12 + length
    return None


def read_video(path):
    """(frame iterator of HxWx3 uint8 RGB, fps, frame count) streamed from disk."""
    cap = cv2.VideoCapture(os.fspath(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))

    def frames():
        done = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                done += 1
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()
        # the container's count is an estimate for some formats: allow a little slack
        if done == 0 or done < count - max(2, count // 50):
            raise ValueError(f"cannot read video {path}: decoded {done} of {count} frames (truncated or corrupt)")

    return frames(), fps, count


# codec name -> (container suffix, ffmpeg encoder, pixel format with alpha)
VIDEO_CODECS = {"prores": (".mov", "prores_ks", "yuva444p10le"), "vp9": (".webm", "libvpx-vp9", "yuva420p")}


class VideoWriter:
    """RGBA video with alpha (ProRes 4444 in .mov or VP9 in .webm) through PyAV, frame by frame."""

    def __init__(self, path, codec: str, fps: float, width: int, height: int, overwrite: bool = False):
        try:
            import av
        except ImportError:
            raise ImportError("video with alpha needs PyAV (cramatte's 'video' extra): pip install av") from None
        from fractions import Fraction

        if codec not in VIDEO_CODECS:
            raise ValueError(f"unknown video codec {codec!r}; choose {', '.join(VIDEO_CODECS)}")
        self.av, self.path = av, Path(path)
        self.staged = Staged(self.path, overwrite)
        _, encoder, pix_fmt = VIDEO_CODECS[codec]
        self.container = av.open(os.fspath(self.staged.tmp), "w")
        self.stream = self.container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        if codec == "prores":
            self.stream.options = {"profile": "4444"}
        else:
            self.stream.options = {"auto-alt-ref": "0"}

    def write(self, rgba: np.ndarray) -> None:
        frame = self.av.VideoFrame.from_ndarray(quantize(rgba, 8), format="rgba")
        _written(self.path, lambda: [self.container.mux(p) for p in self.stream.encode(frame)])

    def close(self) -> Path:
        def finish():
            for packet in self.stream.encode():
                self.container.mux(packet)
            self.container.close()
        try:
            _written(self.path, finish)
        except BaseException:
            self.staged.discard()
            raise
        return self.staged.publish()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # a container that failed mid-write (disk full) may not close cleanly
            pass
        self.staged.discard()
