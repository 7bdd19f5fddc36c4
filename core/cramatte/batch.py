"""Batch matting of image and video files: the job, its plan, the writer, and the run.

`cramatte matte`, `cramatte farm` and the Python API (`cramatte.matte_files`, `cramatte.farm_files`)
all go through here. Every output is staged and published whole (`io.Staged`), never over a file
that exists unless the job says `overwrite`; a rerun skips what is done.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import io
from .frames import COLORSPACES, to_unit_float
from .ranges import check_ranges
from .temporal import STRENGTH

OUTPUTS = ("alpha", "rgba", "premultiplied", "composite")
# A user's mistake or a bad input, reported in one line (the traceback only with -v).
USER_ERRORS = (ValueError, OSError, ImportError, MemoryError)


@dataclass(frozen=True)
class Job:
    """What a batch run writes and with which model: the options of `cramatte matte`.

    outputs: any of alpha, rgba, premultiplied, composite; format: png or exr; depth: 8 or 16 (PNG);
    background: for composite, colour:#rrggbb, colour:r,g,b, blur[:sigma] or image:PATH; colorspace of
    the inputs: auto (EXR linear, others sRGB), srgb or linear; video_codec: png (a PNG or EXR
    sequence per output), prores (.mov) or vp9 (.webm); temporal: video mode's weight of the previous
    matte, 0 (per frame) to 1; overwrite: replace outputs that exist (else they count as done).
    model, config, backend, device, threads: as for `cramatte.Matter`.
    """
    outputs: tuple = ("alpha",)
    format: str = "png"
    depth: int = 8
    background: str = "colour:#00ff00"
    colorspace: str = "auto"
    video_codec: str = "png"
    temporal: float = STRENGTH
    overwrite: bool = False
    model: str | None = None
    config: str = "realtime"
    backend: str = "onnx"
    device: str = "auto"
    threads: int | None = None

    def __post_init__(self):
        outputs = (self.outputs,) if isinstance(self.outputs, str) else tuple(self.outputs)
        object.__setattr__(self, "outputs", outputs)
        for name, values, allowed in (("output", outputs, OUTPUTS), ("format", [self.format], ("png", "exr")),
                                      ("depth", [self.depth], (8, 16)),
                                      ("colorspace", [self.colorspace], ("auto", *COLORSPACES)),
                                      ("video codec", [self.video_codec], ("png", *io.VIDEO_CODECS))):
            for value in values:
                if value not in allowed:
                    raise ValueError(f"unknown {name} {value!r}; choose {', '.join(map(str, allowed))}")
        if not outputs:
            raise ValueError("no outputs asked for; choose any of " + ", ".join(OUTPUTS))
        check_ranges(self, {"temporal": (0, 1, False)})
        if self.threads is not None:
            check_ranges(self, {"threads": (0, math.inf, True)})

    @property
    def suffix(self) -> str:
        return ".exr" if self.format == "exr" else ".png"

    @property
    def needs_foreground(self) -> bool:
        return any(kind != "alpha" for kind in self.outputs)

    def frame_name(self, i: int) -> str:
        """The name of frame `i` in a video's image sequence."""
        return f"{i:06d}{self.suffix}"

    def destinations(self, path: Path, out_dir: Path) -> dict:
        """Output kind -> where `path`'s output goes: a file, or for a video's image sequence a folder."""
        if not io.is_video(path):
            return {k: out_dir / f"{path.stem}_{k}{self.suffix}" for k in self.outputs}
        if self.video_codec == "png":
            return {k: out_dir / f"{path.stem}_{k}" for k in self.outputs}
        return {k: out_dir / f"{path.stem}_{k}{io.VIDEO_CODECS[self.video_codec][0]}" for k in self.outputs}

    def recipe(self, kind: str, video: bool) -> dict:
        """The settings that decide the pixels of output `kind` (of a video's, if `video`). Every image
        written records them (`note`), so that a rerun never mixes outputs made with other settings."""
        fields = {name: getattr(self, name) for name in ("format", "depth", "colorspace", "config", "backend")}
        fields["model"] = os.path.abspath(self.model) if self.model else "shipped"
        if video:
            fields["temporal"] = self.temporal
        if kind == "composite":
            fields["background"] = self.background
        return fields

    def note(self, kind: str, video: bool) -> str:
        return json.dumps(self.recipe(kind, video), sort_keys=True)

    def refuse_mixing(self, image: Path, output: Path, kind: str, video: bool) -> None:
        """Raise a ValueError naming the first option that differs when `image` (`output` itself, or a
        frame of it) was made with settings other than this job's; images without a note pass."""
        try:
            made = json.loads(io.read_note(image) or "{}")
        except ValueError:
            return
        asked = self.recipe(kind, video)
        differ = [name for name in sorted(made) if made[name] != asked.get(name)]
        if differ:
            raise ValueError(f"{output} was made with {_option(differ[0], made)}, this run asks for "
                             f"{_option(differ[0], asked)}: rerun with the same options, or --overwrite to replace it")

    def pending(self, dests: dict) -> dict:
        """The outputs still to write: all of them with `overwrite`, else those that do not exist yet."""
        return {k: d for k, d in dests.items() if self.overwrite or not os.path.lexists(d)}


def _option(name: str, settings: dict) -> str:
    """A setting as its command-line option says it (`--depth 16`)."""
    return f"--{name} {settings[name]}" if name in settings else f"no --{name}"


@dataclass
class Report:
    """What a run did: `written` output paths, `skipped` inputs (done already), and `failed`, one
    line per failure that names its input. `inputs` is how many inputs the run planned."""
    inputs: int = 0
    written: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def parse_background(spec: str):
    """'colour:#00ff00' / 'colour:0,1,0' / 'blur[:sigma]' / 'image:PATH' -> (kind, value)."""
    kind, _, value = spec.partition(":")
    if kind in ("color", "colour"):
        value = value or "#00ff00"
        try:
            if value.startswith("#"):
                if len(value) != 7:
                    raise ValueError
                rgb = tuple(int(value[i:i + 2], 16) / 255 for i in (1, 3, 5))
            else:
                rgb = tuple(float(v) for v in value.split(","))
        except ValueError:
            raise ValueError(f"background colour {value!r} is neither #rrggbb nor r,g,b in [0, 1]") from None
        if len(rgb) != 3 or not all(0 <= c <= 1 for c in rgb):
            raise ValueError(f"background colour {value!r} needs 3 components in [0, 1] (or #rrggbb)")
        return "colour", rgb
    if kind == "blur":
        try:
            sigma = float(value or 20)
        except ValueError:
            sigma = -1.0
        if not 0 < sigma <= 500:
            raise ValueError(f"blur strength {value!r} must be a number above 0 and at most 500 (e.g. blur:20)")
        return "blur", sigma
    if kind == "image":
        img, _ = io.read_image(value)
        return "image", to_unit_float(img[None])[0]
    raise ValueError(f"unknown background {spec!r}; use colour:#rrggbb, blur[:sigma] or image:PATH")


class FrameWriter:
    """Turns one frame + matte into the job's outputs (pixels, ready for an image or a video)."""

    def __init__(self, job: Job):
        self.job, self.background = job, parse_background(job.background)

    def pictures(self, frame01: np.ndarray, matte) -> dict:
        from . import compose

        out = {}
        for kind in self.job.outputs:
            if kind == "alpha":
                out[kind] = matte.alpha
            elif kind in ("rgba", "premultiplied"):
                out[kind] = matte.rgba(kind == "premultiplied")
            else:
                bkind, value = self.background
                bg = compose.background_like(bkind, frame01, colour=value if bkind == "colour" else (0, 1, 0),
                                             blur=value if bkind == "blur" else 20.0,
                                             image=value if bkind == "image" else None)
                out[kind] = compose.composite(matte.foreground, matte.alpha, bg)
        return out


def plan(inputs: list, job: Job, out_dir: Path) -> list:
    """(input, {kind: destination}) for every input; refuses, before any work, an output folder that is a
    file, two inputs with one output, an output that is an input, and outputs made with other settings
    beside outputs still to write."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"-o {out_dir}: it is a file; give a folder for the outputs")
    planned = [(p, job.destinations(p, out_dir)) for p in inputs]
    owners: dict = {}
    for path, dests in planned:
        for dest in dests.values():
            owners.setdefault(dest.resolve(), []).append(path)
    clashes = [f"{', '.join(map(str, srcs))} -> {dest.name}" for dest, srcs in owners.items() if len(srcs) > 1]
    if clashes:
        raise ValueError("inputs that would write the same output (rename one, or matte them into separate "
                         "folders): " + "; ".join(clashes))
    sources = {p.resolve() for p in inputs}
    for dest in owners:
        if dest in sources:
            raise FileExistsError(f"{dest} is an input; refusing to write over it")
    if not job.overwrite and any(job.pending(dests) for _, dests in planned):  # what is done joins what is not
        for path, dests in planned:
            for kind, dest in dests.items():
                made = first_frame(dest) if os.path.isdir(dest) else dest if os.path.lexists(dest) else None
                if made:
                    job.refuse_mixing(made, dest, kind, io.is_video(path))
    return planned


def first_frame(folder: Path) -> Path | None:
    """The first PNG or EXR frame in a sequence folder, or None."""
    frames = sorted(name for name in os.listdir(folder) if name[-4:].lower() in (".png", ".exr") and name[0] != ".")
    return folder / frames[0] if frames else None


def matte_image(path: Path, todo: dict, matter, writer: FrameWriter, wrote) -> None:
    """Matte one image into the outputs `todo` ({kind: file}), calling `wrote(path)` after each file."""
    job = writer.job
    frame, space = io.read_image(path)
    space = space if job.colorspace == "auto" else job.colorspace
    matte = matter(frame, colorspace=space, foreground=job.needs_foreground)
    for kind, pixels in writer.pictures(to_unit_float(frame[None])[0], matte).items():
        if kind in todo:
            wrote(io.write_image(todo[kind], pixels, job.depth, job.overwrite, note=job.note(kind, False)))


def matte_video(path: Path, todo: dict, matter, writer: FrameWriter, wrote, progress: bool = False) -> None:
    """Frames in order through video mode; an image sequence is written into a private folder that takes
    its final name only when the last frame is in, and a video file appears only when it is complete."""
    from tqdm import tqdm

    from .runtime import VideoMatter

    job = writer.job
    frames, fps, count = io.read_video(path)
    video_matter = VideoMatter(matter, strength=job.temporal)
    sequences = {k: io.Staged(d, job.overwrite, folder=True) for k, d in todo.items()} \
        if job.video_codec == "png" else {}
    videos = {}
    try:
        for i, frame in enumerate(tqdm(frames, total=count or None, desc=path.name, unit="frame",
                                       disable=not progress)):
            matte = video_matter(frame, foreground=job.needs_foreground)
            for kind, pixels in writer.pictures(to_unit_float(frame[None])[0], matte).items():
                if kind in sequences:
                    io.write_image(sequences[kind].tmp / job.frame_name(i), pixels, job.depth, staged=False,
                                   note=job.note(kind, True))
                elif kind in todo:
                    if kind not in videos:
                        videos[kind] = io.VideoWriter(todo[kind], job.video_codec, fps, frame.shape[1],
                                                      frame.shape[0], job.overwrite)
                    videos[kind].write(_as_rgba(pixels))
        for kind, v in list(videos.items()):
            wrote(v.close())
            del videos[kind]
        for stage in sequences.values():
            wrote(stage.publish())
    finally:
        for v in videos.values():
            v.abort()
        for stage in sequences.values():
            stage.discard()


def _as_rgba(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 4, -1) * [1, 1, 1, 0] + [0, 0, 0, 1]
    if pixels.shape[-1] == 3:
        return np.concatenate([pixels, np.ones_like(pixels[..., :1])], -1)
    return pixels


def error_line(path, e: BaseException) -> str:
    """The error's message, with the input's name in front when the message does not name it."""
    text = "not enough memory for this frame" if isinstance(e, MemoryError) else str(e) or type(e).__name__
    return text if str(path) in text else f"{path}: {text}"


def as_paths(inputs) -> list:
    """One path, or an iterable of them, as a list of paths."""
    return [Path(inputs)] if isinstance(inputs, (str, os.PathLike)) else [Path(p) for p in inputs]


def gather(inputs) -> list:
    """The images and videos to matte: `io.expand_inputs` of the inputs, less the files in a given folder
    that are cramatte outputs of another file there (NAME_alpha.png beside NAME.jpg: a folder matted
    into itself). A file named directly is always an input."""
    out = []
    for item in as_paths(inputs):
        found = io.expand_inputs([item])
        if item.is_dir():
            stems = {p.stem for p in found}
            found = [p for p in found if not _output_of(p, stems)]
        out += found
    return out


def _output_of(path: Path, stems: set) -> bool:
    """Whether `path`'s name is one cramatte gives an output of an input whose name has one of `stems`."""
    suffixes = {".png", ".exr", *(suffix for suffix, _, _ in io.VIDEO_CODECS.values())}
    stem, _, kind = path.stem.rpartition("_")
    return kind in OUTPUTS and stem in stems and path.suffix.lower() in suffixes


def matte_files(inputs, out_dir, job: Job | None = None, *, progress: bool = True, **settings) -> Report:
    """Matte images, folders of them and videos into the folder `out_dir`: the files `cramatte matte`
    writes, with its guarantees (staged writes, nothing overwritten unless asked, a rerun resumes).

    inputs: a path or a list of paths (files, or folders whose images and videos are matted).
    job: a `Job`; keywords set its fields (`outputs=("alpha", "rgba"), config="quality"`).
    progress: print each file written, skipped or failed as it happens, and a bar per video.
    A bad input is listed in the report's `failed` and the run goes on; a bad setting, a folder with
    nothing to matte, clashing outputs, outputs made with other settings beside outputs still to write
    or a model that does not load raise before any work.
    """
    from .runtime import Matter

    job = replace(job, **settings) if job else Job(**settings)
    writer = FrameWriter(job)
    paths = gather(inputs)
    if not paths:
        raise ValueError("no images or videos found in the inputs")
    planned = plan(paths, job, Path(out_dir))
    io.remove_abandoned(out_dir)  # what a killed run left
    matter = Matter(job.model, config=job.config, backend=job.backend, device=job.device, threads=job.threads)
    report = Report(inputs=len(planned))

    def wrote(dest: Path) -> None:
        report.written.append(dest)
        if progress:
            print(dest)

    for path, dests in planned:
        todo = job.pending(dests)
        if not todo:
            report.skipped.append(path)
            if progress:
                print(f"{path}: done already ({', '.join(d.name for d in dests.values())}); skipped")
            continue
        try:
            if io.is_video(path):
                matte_video(path, todo, matter, writer, wrote, progress)
            else:
                matte_image(path, todo, matter, writer, wrote)
        except USER_ERRORS as e:
            report.failed.append(error_line(path, e))
            if progress:
                print(f"cramatte: error: {report.failed[-1]}", file=sys.stderr)
            logging.getLogger("cramatte").debug("details", exc_info=True)
    return report
