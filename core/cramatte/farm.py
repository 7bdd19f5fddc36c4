"""`cramatte farm`: many shots matted on a Ray cluster, resumable and fault tolerant.

Each Ray worker is an actor holding one loaded `Matter`, so the model loads once per worker. Work is
cut into chunks: a video into runs of `chunk` frames, each starting `overlap` frames early so video
mode's state has settled when its first written frame comes (those warm-up mattes are not written);
images `chunk` at a time. Workers read the inputs and write the outputs themselves, so every node
must see the same paths (a shared filesystem, as render farms have). A chunk writes exactly the
files `cramatte matte` writes for the same input and options; a video's frames gather in a hidden
`.NAME.farm-partial` folder that takes its final name when the whole shot is in. Ray restarts a
worker that dies and reruns its chunk; a rerun of the command skips finished shots and frames.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from . import io


@dataclass(frozen=True)
class Chunk:
    """Frames [start, stop) of one video, matted from `start - warmup`; or a group of images."""
    shot: str
    start: int = 0
    stop: int = 0
    warmup: int = 0
    images: tuple = ()

    @property
    def frames(self) -> int:
        return len(self.images) if self.images else self.stop - self.start

    def label(self) -> str:
        return f"{self.shot} frames {self.start}-{self.stop - 1}" if not self.images else \
            f"{', '.join(Path(p).name for p in self.images)}"


@dataclass
class Shot:
    frames: int = 0
    done: int = 0
    seconds: float = 0.0
    failures: list = field(default_factory=list)


def partial_folder(final: Path) -> Path:
    return final.with_name(f".{final.name}.farm-partial")


def frame_name(i: int, args) -> str:
    return f"{i:06d}{'.exr' if args.format == 'exr' else '.png'}"


def video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(os.fspath(path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {path}")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    if count <= 0:
        raise ValueError(f"cannot read video {path}: its frame count is unknown")
    return count


class Worker:
    """One Ray actor: a loaded `Matter` and the writer of `cramatte matte`, for chunk after chunk."""

    def __init__(self, options: dict):
        from .cli import FrameWriter, _parse_background
        from .runtime import Matter

        self.args = argparse.Namespace(**options)
        a = self.args
        self.matter = Matter(a.model, config=a.config, backend=a.backend, device=a.device, threads=a.threads)
        self.writer = FrameWriter(a, _parse_background(a.background))
        self.need_fg = any(o != "alpha" for o in a.output)

    def ready(self) -> bool:
        return True

    def run(self, chunk: Chunk, dests: dict) -> tuple:
        """Matte one chunk; returns (frames written, seconds, [(input, error message)]). A bad input is
        reported, not raised: Ray retries a chunk only when its worker dies."""
        from .cli import USER_ERRORS, _matte_image, _naming, pending

        start, written, failures = time.perf_counter(), 0, []
        for path in chunk.images or (chunk.shot,):
            try:
                if chunk.images:
                    todo = {k: Path(d) for k, d in pending(dests[path], self.args).items()}
                    if todo:
                        _matte_image(Path(path), todo, self.matter, self.writer, self.args, self.need_fg)
                    written += 1
                else:
                    written += self._video(chunk, {k: Path(d) for k, d in dests[path].items()})
            except USER_ERRORS as e:
                failures.append((path, _naming(Path(path), e)))
        return written, time.perf_counter() - start, failures

    def _video(self, chunk: Chunk, dests: dict) -> int:
        from .frames import to_unit_float
        from .runtime import VideoMatter

        folders = {k: partial_folder(d) for k, d in dests.items()}
        cap = cv2.VideoCapture(chunk.shot)
        first = chunk.start - chunk.warmup
        for _ in range(first):
            if not cap.grab():
                raise ValueError(f"cannot read video {chunk.shot}: it ends before frame {first}")
        video = VideoMatter(self.matter, strength=self.args.temporal)
        written = 0
        try:
            for i in range(first, chunk.stop):
                ok, bgr = cap.read()
                if not ok:
                    raise ValueError(f"cannot read video {chunk.shot}: decoded {i} of {chunk.stop} frames "
                                     "(truncated or corrupt)")
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                matte = video(frame, foreground=self.need_fg)
                if i < chunk.start:
                    continue
                name = frame_name(i, self.args)
                for kind, pixels in self.writer.pictures(to_unit_float(frame[None])[0], matte).items():
                    if not os.path.lexists(folders[kind] / name):
                        io.write_image(folders[kind] / name, pixels, self.args.depth)
                written += 1
        finally:
            cap.release()
        return written


def expand_farm_inputs(inputs: list, list_file: str | None = None) -> list:
    """Inputs as given, plus the lines of a list file; names that do not exist are expanded as globs."""
    import glob

    items = list(inputs)
    if list_file:
        lines = Path(list_file).read_text().splitlines()
        items += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    out = []
    for item in items:
        if not os.path.lexists(item) and glob.has_magic(item):
            matches = sorted(glob.glob(item))
            if not matches:
                raise FileNotFoundError(f"no input matches {item!r}")
            out += matches
        else:
            out.append(item)
    return out


def plan_chunks(plan: list, args) -> tuple:
    """(chunks to run, {shot: Shot}, frames already done) for `cli._plan`'s output, skipping what a
    previous run finished: whole shots, and video chunks whose every frame is in the partial folder."""
    from .cli import pending

    chunks, shots, finished = [], {}, 0
    images = []
    for path, dests in plan:
        todo = pending(dests, args)
        if not io.is_video(path):
            shots[str(path)] = Shot(frames=1)
            if todo:
                images.append(str(path))
            else:
                finished += 1
            continue
        count = video_frames(path)
        shots[str(path)] = Shot(frames=count)
        if not todo:
            finished += count
            continue
        for kind, final in todo.items():
            folder = partial_folder(final)
            if args.overwrite and folder.exists():
                shutil.rmtree(folder)
            _own_folder(folder)
        for start in range(0, count, args.chunk):
            chunk = Chunk(str(path), start, min(start + args.chunk, count), min(args.overlap, start))
            have = all(os.path.lexists(partial_folder(todo[k]) / frame_name(i, args))
                       for k in todo for i in range(chunk.start, chunk.stop))
            if have:
                finished += chunk.frames
            else:
                chunks.append(chunk)
    for i in range(0, len(images), args.chunk):
        chunks.append(Chunk(images[i], images=tuple(images[i:i + args.chunk])))
    return chunks, shots, finished


def _own_folder(folder: Path) -> None:
    """Create `folder`, or reuse it if it is a real folder of this user's (never a planted symlink)."""
    try:
        folder.mkdir(mode=0o755, parents=True)
    except FileExistsError:
        st = os.lstat(folder)
        if not os.path.isdir(folder) or os.path.islink(folder) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            raise FileExistsError(f"{folder} exists and is not this user's own partial folder; remove it") from None


def publish_shot(path: str, dests: dict, args) -> None:
    """Give a finished video's partial folders their final names (only when every frame is in)."""
    count = video_frames(Path(path))
    for kind, final in dests.items():
        folder = partial_folder(final)
        if not folder.exists():
            continue
        for leftover in folder.glob(".*"):  # a dead worker's private write folder
            shutil.rmtree(leftover, ignore_errors=True)
        missing = [i for i in range(count) if not (folder / frame_name(i, args)).exists()]
        if missing:
            raise ValueError(f"{path}: frames {missing[0]}..{missing[-1]} of {kind} are missing")
        if os.path.lexists(final) and not args.overwrite:
            raise FileExistsError(f"{final} appeared while the farm ran; the frames stay in {folder}")
        io.rename_folder(folder, final)


def run_farm(inputs: list, args) -> int:
    """The `cramatte farm` command after argument parsing; returns the exit code."""
    from tqdm import tqdm

    from .cli import _naming, _plan, report_failures

    try:
        import ray
    except ImportError:
        raise ImportError("cramatte farm needs Ray (cramatte's 'farm' extra): pip install 'ray==2.60.0'") from None
    # workers run in folders of their own: every path they see is absolute
    inputs = [Path(p).absolute() for p in inputs]
    plan = _plan(inputs, args, Path(args.out).absolute())
    dests = {str(p): {k: str(d) for k, d in ds.items()} for p, ds in plan}
    chunks, shots, finished = plan_chunks(plan, args)
    total = sum(s.frames for s in shots.values())
    print(f"{len(shots)} shots, {total} frames: {finished} done already, {total - finished} to do "
          f"in {len(chunks)} chunks")
    if chunks:
        _run_chunks(ray, chunks, shots, dests, args, total, finished, tqdm)
    failures = []
    for path, shot in shots.items():
        if not shot.failures and io.is_video(path) and any(partial_folder(Path(d)).exists() for d in dests[path].values()):
            try:
                publish_shot(path, {k: Path(d) for k, d in dests[path].items()}, args)
            except (ValueError, OSError) as e:
                shot.failures.append(_naming(Path(path), e))
        failures += shot.failures
    print(f"{'shot':40} {'frames':>7} {'matted':>7} {'seconds':>8}  failures")
    for path, shot in shots.items():
        print(f"{Path(path).name[-40:]:40} {shot.frames:7d} {shot.done:7d} {shot.seconds:8.1f}  {len(shot.failures)}")
    return report_failures(failures, f"cramatte farm: {len(failures)} failures:")


def _run_chunks(ray, chunks, shots, dests, args, total, finished, tqdm) -> None:
    if not ray.is_initialized():
        local = {} if args.address else {"include_dashboard": False}  # only for a cluster of its own
        ray.init(address=args.address, logging_level="ERROR", log_to_driver=False, **local)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    workers = args.workers or max(1, cpus // args.cpus_per_worker)
    options = {k: getattr(args, k) for k in ("model", "config", "backend", "device", "output", "background",
                                               "format", "depth", "colorspace", "temporal", "overwrite")}
    options["threads"] = args.cpus_per_worker
    remote = ray.remote(num_cpus=args.cpus_per_worker, num_gpus=args.gpus_per_worker, max_restarts=args.retries,
                        max_task_retries=args.retries)(Worker)
    actors = [remote.remote(options) for _ in range(min(workers, len(chunks)))]
    ray.get([a.ready.remote() for a in actors])  # models loaded: the clock counts matting and scheduling only
    queue, pending, idle = deque(chunks), {}, list(actors)
    chunk_seconds, started = [], time.perf_counter()
    bar = tqdm(total=total, initial=finished, unit="frame", desc="farm", smoothing=0.1)
    try:
        while queue or pending:
            while idle and queue:
                actor, chunk = idle.pop(), queue.popleft()
                pending[actor.run.remote(chunk, dests)] = (chunk, actor, time.perf_counter())
            ready, _ = ray.wait(list(pending), num_returns=1)
            chunk, actor, submitted = pending.pop(ready[0])
            try:
                done, seconds, failed = ray.get(ready[0])
            except ray.exceptions.RayError as e:  # a worker or node lost more often than the retries allow
                shots[chunk.images[0] if chunk.images else chunk.shot].failures.append(
                    f"{chunk.label()}: not matted ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
                idle.append(actor)
                continue
            chunk_seconds.append((time.perf_counter() - submitted, seconds))
            for path, message in failed:
                shots[path].failures.append(message)
            paths = chunk.images or (chunk.shot,)
            for path in paths:
                shots[path].done += 1 if chunk.images else done
                shots[path].seconds += seconds / len(paths)
            bar.update(chunk.frames)
            idle.append(actor)
    finally:
        bar.close()
    if chunk_seconds:
        wall = time.perf_counter() - started
        overhead = sum(w - s for w, s in chunk_seconds) / len(chunk_seconds)
        print(f"{len(actors)} workers, {sum(c.frames for c in chunks) / wall:.1f} frames/s; "
              f"scheduling overhead {overhead * 1000:.0f} ms per chunk")
