"""Reading and writing images and videos; writes are atomic and never replace an existing file."""
import os
from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".exr"}
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


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

    try:
        with OpenEXR.File(os.fspath(path)) as f:
            channels = {name: ch.pixels for name, ch in f.channels().items()}
    except Exception as e:  # OpenEXR raises RuntimeError and friends for corrupt files
        raise ValueError(f"cannot read image {path} ({e})") from None
    for name in ("RGBA", "RGB", "A", "Y"):
        if name in channels:
            return channels[name].astype(np.float32)
    raise ValueError(f"{path} has no RGB, RGBA, A or Y channels (has {', '.join(channels)})")


def write_exr(path, pixels: np.ndarray) -> None:
    """Float EXR (ZIP): HxW as channel A (a matte), HxWx3 as RGB, HxWx4 as RGBA."""
    import OpenEXR

    name = {2: "A"}.get(pixels.ndim) or {3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {name: np.ascontiguousarray(pixels, np.float32)}) as f:
        f.write(os.fspath(path))


def read_image(path) -> tuple:
    """(HxWx{3,4} RGB(A) array in its file's dtype, colorspace): EXR is float32 linear, others sRGB."""
    if Path(path).suffix.lower() == ".exr":
        img = read_exr(path)
        return (np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img), "linear"
    img = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {path} (missing, corrupt or unsupported format)")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    else:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    if img.dtype not in (np.uint8, np.uint16):
        img = img.astype(np.float32)
    return img, "srgb"


def quantize(x: np.ndarray, depth: int) -> np.ndarray:
    scale = (1 << depth) - 1
    return (np.clip(x, 0, 1) * scale + 0.5).astype(np.uint8 if depth == 8 else np.uint16)


def _reserve(path: Path, overwrite: bool) -> Path:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it (use --overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def write_image(path, pixels: np.ndarray, depth: int = 8, overwrite: bool = False) -> Path:
    """Write HxW, HxWx3 or HxWx4 float pixels in [0, 1] as 8/16-bit PNG (or TIFF), or float EXR."""
    path = Path(path)
    tmp = _reserve(path, overwrite)
    if path.suffix.lower() == ".exr":
        write_exr(tmp, pixels)
        tmp.replace(path)
        return path
    data = quantize(pixels, depth)
    if data.ndim == 3:
        data = cv2.cvtColor(data, cv2.COLOR_RGBA2BGRA if data.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(os.fspath(tmp), data):
        raise OSError(f"could not write {path}")
    tmp.replace(path)
    return path


def read_video(path):
    """(frame iterator of HxWx3 uint8 RGB, fps, frame count) streamed from disk."""
    cap = cv2.VideoCapture(os.fspath(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))

    def frames():
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    return
                yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        finally:
            cap.release()

    return frames(), fps, count


# codec name -> (container suffix, ffmpeg encoder, pixel format with alpha)
VIDEO_CODECS = {"prores": (".mov", "prores_ks", "yuva444p10le"), "vp9": (".webm", "libvpx-vp9", "yuva420p")}


class VideoWriter:
    """RGBA video with alpha (ProRes 4444 in .mov or VP9 in .webm) through PyAV, frame by frame."""

    def __init__(self, path, codec: str, fps: float, width: int, height: int, overwrite: bool = False):
        try:
            import av
        except ImportError:
            raise ImportError("video with alpha needs PyAV: pip install 'cramatte[video]'") from None
        from fractions import Fraction

        if codec not in VIDEO_CODECS:
            raise ValueError(f"unknown video codec {codec!r}; choose {', '.join(VIDEO_CODECS)}")
        self.av, self.path = av, Path(path)
        self.tmp = _reserve(self.path, overwrite)
        _, encoder, pix_fmt = VIDEO_CODECS[codec]
        self.container = av.open(os.fspath(self.tmp), "w")
        self.stream = self.container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, pix_fmt
        if codec == "prores":
            self.stream.options = {"profile": "4444"}
        else:
            self.stream.options = {"auto-alt-ref": "0"}

    def write(self, rgba: np.ndarray) -> None:
        frame = self.av.VideoFrame.from_ndarray(quantize(rgba, 8), format="rgba")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> Path:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        self.container.close()
        self.tmp.unlink(missing_ok=True)
