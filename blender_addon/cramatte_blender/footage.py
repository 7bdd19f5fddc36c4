"""Frames of a footage datablock (Image, Movie Clip, Sequencer strip) read from disk, and the matting
job that turns them into a matte sequence with a reusable per-frame cache."""
import hashlib
import json
import os
import re

import bpy

LINEAR_SPACES = {"Linear Rec.709", "Linear", "Linear CIE-XYZ E", "Linear CIE-XYZ D65", "ACEScg", "ACES2065-1",
                 "Linear Rec.2020", "Linear FilmLight E-Gamut", "Linear DCI-P3 D65"}


def _colorspace(settings, path: str) -> str:
    name = settings.name if settings is not None else ""
    return "linear" if name in LINEAR_SPACES or (not name and path.lower().endswith(".exr")) else "srgb"


def _sequence(path: str) -> dict:
    """{frame number: file} for the numbered image sequence that `path` is one frame of."""
    folder, name = os.path.split(path)
    m = re.match(r"^(.*?)(\d+)(\.[^.]+)$", name)
    if not m:
        return {1: path}
    head, _, tail = m.groups()
    pattern = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + "$")
    return {int(pm.group(1)): os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if (pm := pattern.match(f))}


def describe(target) -> dict:
    """{"name", "files" or "movie", "colorspace", "start"} for an Image, MovieClip or Sequencer strip."""
    if isinstance(target, bpy.types.Image):
        path = bpy.path.abspath(target.filepath, library=target.library)
        space = _colorspace(target.colorspace_settings, path)
        if target.source == "MOVIE":
            return {"name": target.name, "movie": path, "colorspace": space, "start": 1}
        files = _sequence(path) if target.source == "SEQUENCE" else {1: path}
        return {"name": target.name, "files": files, "colorspace": space, "start": min(files)}
    if isinstance(target, bpy.types.MovieClip):
        path = bpy.path.abspath(target.filepath, library=target.library)
        space = _colorspace(target.colorspace_settings, path)
        if target.source == "MOVIE":
            return {"name": target.name, "movie": path, "colorspace": space, "start": target.frame_start}
        files = _sequence(path)
        return {"name": target.name, "files": files, "colorspace": space, "start": min(files)}
    kind = getattr(target, "type", "")
    # A strip shows its source's frame N - frame_start at scene frame N (a movie of another frame rate too:
    # Blender does not retime it), only between its trims: only those frames are matted.
    shown = {"first": int(target.frame_final_start), "last": int(target.frame_final_end) - 1} if kind else {}
    if kind == "MOVIE":
        path = bpy.path.abspath(target.filepath)
        return {"name": target.name, "movie": path, "colorspace": _colorspace(target.colorspace_settings, path),
                "start": int(target.frame_start), **shown}
    if kind == "IMAGE":
        folder = bpy.path.abspath(target.directory)
        files = {int(target.frame_start) + i: os.path.join(folder, e.filename) for i, e in enumerate(target.elements)
                 if shown["first"] <= int(target.frame_start) + i <= shown["last"]}
        first = next(iter(files.values()))
        return {"name": target.name, "files": files, "colorspace": _colorspace(target.colorspace_settings, first),
                "start": int(target.frame_start), **shown}
    raise ValueError(f"cannot matte {type(target).__name__} '{getattr(target, 'name', '')}': "
                     "choose an Image, a Movie Clip or a movie/image strip")


def _fingerprint(path: str, index: int = 0) -> str:
    st = os.stat(path)
    return hashlib.sha1(f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{index}".encode()).hexdigest()


def iter_frames(desc: dict):
    """(frame number, fingerprint, loader) per frame; a loader returns (pixels, colorspace)."""
    from cramatte.io import read_image

    if "files" in desc:
        for frame, path in sorted(desc["files"].items()):
            yield frame, _fingerprint(path), lambda p=path: (read_image(p)[0], desc["colorspace"])
        return
    import cv2

    cap = cv2.VideoCapture(desc["movie"])
    if not cap.isOpened():
        raise ValueError(f"cannot open movie {desc['movie']}")
    first, last = desc.get("first", desc["start"]), desc.get("last", float("inf"))
    try:
        i = 0
        while desc["start"] + i <= last:
            if desc["start"] + i < first:  # trimmed off: decoded to keep count, never matted
                if not cap.grab():
                    return
                i += 1
                continue
            ok, bgr = cap.read()
            if not ok:
                return
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            yield desc["start"] + i, _fingerprint(desc["movie"], i), lambda x=rgb: (x, "srgb")
            i += 1
    finally:
        cap.release()


class MatteJob:
    """Mattes every frame of a footage description into `out_dir` as matte_####.<ext> files holding
    the foreground colour in RGB and the alpha in A. Frames whose source and settings are unchanged
    since the last run are reused. Never writes over a source file."""

    MANIFEST = "cramatte.json"

    def __init__(self, desc: dict, out_dir: str, settings: dict):
        self.desc, self.out_dir, self.settings = desc, out_dir, settings
        self.ext = ".exr" if settings.get("format", "PNG") == "EXR" else ".png"
        self.total = len(desc["files"]) if "files" in desc else None
        self.done = self.reused = 0
        self.cancelled = False
        self.error = None
        sources = {os.path.abspath(p) for p in desc.get("files", {}).values()} | (
            {os.path.abspath(desc["movie"])} if "movie" in desc else set())
        if any(os.path.dirname(s) == os.path.abspath(out_dir) for s in sources):
            raise ValueError(f"the output folder {out_dir} holds the footage itself; choose another")

    def path(self, frame: int) -> str:
        return os.path.join(self.out_dir, f"matte_{frame:04d}{self.ext}")

    def _manifest(self) -> dict:
        try:
            with open(os.path.join(self.out_dir, self.MANIFEST)) as f:
                data = json.load(f)
            return data["frames"] if data.get("settings") == self.settings else {}
        except (OSError, ValueError, KeyError):
            return {}

    def run(self, progress=lambda done, total: None) -> list:
        from cramatte import Matter, VideoMatter
        from cramatte.io import write_image

        os.makedirs(self.out_dir, exist_ok=True)
        moving = "movie" in self.desc or len(self.desc.get("files", ())) > 1
        previous, manifest, frames, matter, video = self._manifest(), {}, [], None, None
        for frame, print_, load in iter_frames(self.desc):
            if self.cancelled:
                break
            out = self.path(frame)
            if previous.get(str(frame)) == print_ and os.path.exists(out):
                self.reused += 1
                if video is not None:
                    video.reset()  # the chain of frames is broken: start afresh at the next one matted
            else:
                if matter is None:
                    matter = Matter(self.settings.get("model") or None, config=self.settings["config"],
                                    device=self.settings["device"])
                    video = VideoMatter(matter) if moving and self.settings.get("video") else None
                pixels, space = load()
                m = (video or matter)(pixels, colorspace=space, foreground=True)
                rgba = m.rgba()
                if self.ext == ".png" and space == "linear":
                    from cramatte.frames import linear_to_srgb
                    rgba[..., :3] = linear_to_srgb(rgba[..., :3])
                write_image(out, rgba, depth=16, overwrite=True)
            manifest[str(frame)] = print_
            frames.append(frame)
            self.done += 1
            progress(self.done, self.total)
        with open(os.path.join(self.out_dir, self.MANIFEST), "w") as f:
            json.dump({"settings": self.settings, "frames": {**previous, **manifest}}, f)
        return frames
