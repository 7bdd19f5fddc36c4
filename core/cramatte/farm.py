"""`cramatte farm` and `cramatte.farm_files`: many shots matted on a Ray cluster, resumable and fault tolerant.

Each Ray worker is an actor holding one loaded `Matter`, so the model loads once per worker. Work is
cut into chunks: a video into runs of `chunk` frames, each starting `overlap` frames early so video
mode's state has settled when its first written frame comes (those warm-up mattes are not written);
images `chunk` at a time. Workers read the inputs and write the outputs themselves, so every node
must see the same paths (a shared filesystem, as render farms have). A chunk writes exactly the
files `cramatte matte` writes for the same input and options; a video's frames gather in a hidden
`.NAME.farm-partial` folder that takes its final name when the whole shot is in. Ray replaces a
worker that dies and reruns its chunk (`retries` times per chunk); the chunks of a lost node go to the
workers that remain. A rerun of the command skips finished shots and frames, and refuses frames made
with other settings.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2

from . import io
from .batch import USER_ERRORS, FrameWriter, Job, Report, error_line, first_frame, gather, matte_image, parse_background, plan
from .ranges import check_ranges


@dataclass(frozen=True)
class Cluster:
    """Where and how a farm run works: the Ray cluster (`address`: None for a local cluster of this
    machine's cores, "auto", or "ray://host:10001"), worker actors (0: the cluster's CPUs divided by
    `cpus_per_worker`) with their CPUs (and inference threads) and GPUs, frames or images per
    chunk, warm-up frames before a video chunk, and restarts of a lost worker."""
    address: str | None = None
    workers: int = 0
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    chunk: int = 100
    overlap: int = 8
    retries: int = 3

    def __post_init__(self):
        check_ranges(self, {"workers": (0, 100_000, True), "cpus_per_worker": (1, 4096, True),
                            "gpus_per_worker": (0, 64, False), "chunk": (1, 10_000_000, True),
                            "overlap": (0, 10_000, True), "retries": (0, 100, True)})


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

    def __init__(self, job: Job):
        from .runtime import Matter

        self.job = job
        self.matter = Matter(job.model, config=job.config, backend=job.backend, device=job.device,
                             threads=job.threads)
        self.writer = FrameWriter(job)

    def node(self) -> str:
        """The id of the Ray node this worker runs on."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def run(self, chunk: Chunk, dests: dict) -> tuple:
        """Matte one chunk; returns (frames written, seconds, [(input, error message)], [image outputs
        written], this worker's node). A bad input is reported, not raised: Ray retries a chunk only
        when its worker dies."""
        start, written, failures, files = time.perf_counter(), 0, [], []
        for path in chunk.images or (chunk.shot,):
            try:
                if chunk.images:
                    todo = self.job.pending({k: Path(d) for k, d in dests[path].items()})
                    if todo:
                        matte_image(Path(path), todo, self.matter, self.writer, files.append)
                    written += 1
                else:
                    written += self._video(chunk, {k: Path(d) for k, d in dests[path].items()})
            except USER_ERRORS as e:
                failures.append((path, error_line(path, e)))
        return written, time.perf_counter() - start, failures, files, self.node()

    def _video(self, chunk: Chunk, dests: dict) -> int:
        from .frames import to_unit_float
        from .runtime import VideoMatter

        folders = {k: partial_folder(d) for k, d in dests.items()}
        cap = cv2.VideoCapture(chunk.shot)
        first = chunk.start - chunk.warmup
        for _ in range(first):
            if not cap.grab():
                raise ValueError(f"cannot read video {chunk.shot}: it ends before frame {first}")
        video = VideoMatter(self.matter, strength=self.job.temporal)
        written = 0
        try:
            for i in range(first, chunk.stop):
                ok, bgr = cap.read()
                if not ok:
                    raise ValueError(f"cannot read video {chunk.shot}: decoded {i} of {chunk.stop} frames "
                                     "(truncated or corrupt)")
                frame = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                matte = video(frame, foreground=self.job.needs_foreground)
                if i < chunk.start:
                    continue
                name = self.job.frame_name(i)
                for kind, pixels in self.writer.pictures(to_unit_float(frame[None])[0], matte).items():
                    if not os.path.lexists(folders[kind] / name):
                        io.write_image(folders[kind] / name, pixels, self.job.depth, note=self.job.note(kind, True))
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


def plan_chunks(planned: list, job: Job, cluster: Cluster) -> tuple:
    """(chunks to run, {shot: Shot}, frames already done) for `batch.plan`'s output, skipping what a
    previous run finished: whole shots, and video chunks whose every frame is in the partial folder."""
    chunks, shots, finished = [], {}, 0
    images = []
    for path, dests in planned:
        todo = job.pending(dests)
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
            if job.overwrite and folder.exists():
                shutil.rmtree(folder)
            _own_folder(folder)
            made = first_frame(folder)
            if made:  # frames of a run that stopped: made with this run's settings, or refused
                job.refuse_mixing(made, final, kind, True)
        for start in range(0, count, cluster.chunk):
            chunk = Chunk(str(path), start, min(start + cluster.chunk, count), min(cluster.overlap, start))
            have = all(os.path.lexists(partial_folder(todo[k]) / job.frame_name(i))
                       for k in todo for i in range(chunk.start, chunk.stop))
            if have:
                finished += chunk.frames
            else:
                chunks.append(chunk)
    for i in range(0, len(images), cluster.chunk):
        chunks.append(Chunk(images[i], images=tuple(images[i:i + cluster.chunk])))
    return chunks, shots, finished


def _own_folder(folder: Path) -> None:
    """Create `folder`, or reuse it if it is a real folder of this user's (never a planted symlink)."""
    try:
        folder.mkdir(mode=0o755, parents=True)
    except FileExistsError:
        st = os.lstat(folder)
        if not os.path.isdir(folder) or os.path.islink(folder) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            raise FileExistsError(f"{folder} exists and is not this user's own partial folder; remove it") from None


def publish_shot(path: str, dests: dict, job: Job) -> list:
    """Give a finished video's partial folders their final names (only when every frame is in); returns
    the folders published."""
    count = video_frames(Path(path))
    published = []
    for kind, final in dests.items():
        folder = partial_folder(final)
        if not folder.exists():
            continue
        for leftover in folder.glob(".*"):  # a dead worker's private write folder
            shutil.rmtree(leftover, ignore_errors=True)
        missing = [i for i in range(count) if not (folder / job.frame_name(i)).exists()]
        if missing:
            raise ValueError(f"{path}: frames {missing[0]}..{missing[-1]} of {kind} are missing")
        if os.path.lexists(final) and not job.overwrite:
            raise FileExistsError(f"{final} appeared while the farm ran; the frames stay in {folder}")
        io.rename_folder(folder, final)
        published.append(final)
    return published


def farm_files(inputs, out_dir, job: Job | None = None, *, cluster: Cluster = Cluster(), progress: bool = True,
               **settings) -> Report:
    """`cramatte.matte_files` on a Ray cluster: the same files (videos as image sequences), resumable.

    inputs, out_dir, job and its keywords: as for `matte_files`; every node must see the same paths.
    cluster: a `Cluster` (the local machine's cores by default). progress: print the plan, a progress
    bar, the throughput and a table of the shots. Connects to Ray unless it is initialised already, and
    shuts down only a connection of its own.
    """
    job = replace(job, **settings) if job else Job(**settings)
    if job.video_codec != "png":
        raise ValueError(f"the farm writes videos as image sequences, not {job.video_codec}: use video_codec='png'")
    parse_background(job.background)  # a bad setting fails here, before any cluster starts
    paths = gather(inputs)
    ray = _import_ray(cluster.address)
    job = replace(job, threads=cluster.cpus_per_worker)
    # workers run in folders of their own: every path they see is absolute
    out_dir = Path(out_dir).absolute()
    planned = plan([p.absolute() for p in paths], job, out_dir)
    dests = {str(p): {k: str(d) for k, d in ds.items()} for p, ds in planned}
    report = Report(inputs=len(planned), skipped=[p for p, ds in planned if not job.pending(ds)])
    with _connected(ray, cluster):
        try:
            io.remove_abandoned(out_dir)  # what a run or a worker killed outright left
            chunks, shots, finished = plan_chunks(planned, job, cluster)
            total = sum(s.frames for s in shots.values())
            if progress:
                print(f"{len(shots)} shots, {total} frames: {finished} done already, {total - finished} to do "
                      f"in {len(chunks)} chunks")
            if chunks:
                report.written += _run_chunks(ray, chunks, shots, dests, job, cluster, (total, finished), progress)
        finally:
            for final in (Path(d) for ds in dests.values() for d in ds.values()):
                _drop_if_empty(partial_folder(final))
    io.remove_abandoned(out_dir)
    for path, shot in shots.items():
        if not shot.failures and io.is_video(path) and any(partial_folder(Path(d)).exists() for d in dests[path].values()):
            try:
                report.written += publish_shot(path, {k: Path(d) for k, d in dests[path].items()}, job)
            except (ValueError, OSError) as e:
                shot.failures.append(error_line(path, e))
        report.failed += shot.failures
    if progress:
        print(f"{'shot':40} {'frames':>7} {'matted':>7} {'seconds':>8}  failures")
        for path, shot in shots.items():
            print(f"{Path(path).name[-40:]:40} {shot.frames:7d} {shot.done:7d} {shot.seconds:8.1f}  {len(shot.failures)}")
    return report


def _is_client(address: str | None) -> bool:
    return bool(address) and address.startswith("ray://")


def _import_ray(address: str | None):
    """The `ray` module, or an ImportError that says which extra brings what is missing."""
    try:
        import ray
        if _is_client(address):
            import ray.util.client.worker  # noqa: F401  (needs grpcio: ray[client])
    except ImportError as e:
        raise ImportError(f"cramatte farm needs Ray with its client ({e.name or e} is missing; cramatte's 'farm' "
                          "extra): pip install 'ray[client]==2.60.0'") from None
    return ray


CLIENT_ATTEMPTS = 3  # Ray Client's per-connection server dies at its start now and then


@contextmanager
def _connected(ray, cluster: Cluster):
    """Connected to the cluster: the caller's Ray connection if there is one, else one of our own,
    closed at the end. Ray's own SIGTERM handler (an exit) gives way to the caller's."""
    if ray.is_initialized():
        yield
        return
    handler = signal.getsignal(signal.SIGTERM)
    local = {} if cluster.address else {"include_dashboard": False}  # only for a cluster of its own
    attempts = CLIENT_ATTEMPTS if _is_client(cluster.address) else 1
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False, **local)
            break
        except ConnectionAbortedError as e:  # a Ray Client server that died at its start (ray-project/ray#63202)
            if attempt == attempts:
                raise
            print(f"cramatte farm: the cluster's Ray Client server for this connection failed to start "
                  f"({_first_line(e)}); connecting again", file=sys.stderr)
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        ray.shutdown()


def _drop_if_empty(folder: Path) -> None:
    """Remove a partial folder that holds no frames."""
    try:
        folder.rmdir()
    except OSError:  # not there, or not empty
        pass


def _run_chunks(ray, chunks, shots, dests, job, cluster, frames, progress) -> list:
    """Run `chunks` on worker actors, adding each shot's frames, seconds and failures to `shots`; returns
    the image outputs written. `frames`: (total, done already) for the progress bar.

    Ray replaces a worker whose process dies (`max_restarts=-1`) and reruns its chunk up to
    `cluster.retries` times (`max_task_retries`: the retries count against the chunk, not the worker)."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    workers = cluster.workers or max(1, cpus // cluster.cpus_per_worker)
    remote = ray.remote(num_cpus=cluster.cpus_per_worker, num_gpus=cluster.gpus_per_worker,
                        max_restarts=-1, max_task_retries=cluster.retries)(Worker)
    actors = [remote.remote(job) for _ in range(min(workers, len(chunks)))]
    try:
        nodes = ray.get([a.node.remote() for a in actors])  # models loaded: the clock counts matting only
        return _schedule(ray, actors, nodes, chunks, shots, dests, cluster.retries, frames, progress)
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)


POLL_SECONDS = 5.0  # how often the driver looks for lost nodes while it waits for chunks


def _schedule(ray, actors, nodes, chunks, shots, dests, retries, frames, progress) -> list:
    """Hand chunks to idle actors until all are done or failed; see `_run_chunks`. `nodes[i]` is the node
    actor i runs on. A chunk whose worker died on every try fails, unless the worker's node died: then
    it goes back in the queue, and a worker that no node is left to take is dropped (its chunks wait
    for the others; when none are left, they fail)."""
    from tqdm import tqdm

    # pending: ref -> (chunk, actor, submitted, None) for a chunk; (chunk, actor, 0, error) while a
    # worker that lost that chunk restarts
    queue, pending, idle, written, lost = deque(chunks), {}, list(range(len(actors))), [], set()
    matted, overheads, started = 0, [], time.perf_counter()
    with tqdm(total=frames[0], initial=frames[1], unit="frame", desc="farm", smoothing=0.1,
              disable=not progress) as bar:
        while pending or (queue and len(lost) < len(actors)):
            while idle and queue:
                i, chunk = idle.pop(), queue.popleft()
                pending[actors[i].run.remote(chunk, dests)] = (chunk, i, time.perf_counter(), None)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            if not ready:
                _drop_lost(ray, actors, nodes, lost, {i for _, i, _, _ in pending.values()})
                continue
            chunk, i, submitted, error = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as e:
                if error is not None or i in lost:  # a worker no node can take: its chunk goes to the others
                    lost.add(i)
                    queue.appendleft(chunk)
                elif isinstance(e, ray.exceptions.RayActorError):  # wait for Ray to restart the worker
                    pending[actors[i].node.options(max_task_retries=-1).remote()] = (chunk, i, 0.0, e)
                else:
                    _fail(shots, chunk, f"the worker failed: {_first_line(e)}")
                    idle.append(i)
                continue
            if error is not None:  # the worker is back: was it the chunk, or the node the worker was on?
                if nodes[i] in _dead_nodes(ray):
                    queue.appendleft(chunk)
                else:
                    _fail(shots, chunk, f"its worker died ({retries + 1} {'try' if retries == 0 else 'tries'}): "
                                        f"{_first_line(error)}")
                nodes[i] = result
                idle.append(i)
                continue
            done, seconds, failed, files, nodes[i] = result
            overheads.append(time.perf_counter() - submitted - seconds)
            written += files
            matted += done
            for path, message in failed:
                shots[path].failures.append(message)
            paths = chunk.images or (chunk.shot,)
            for path in paths:
                shots[path].done += 1 if chunk.images else done
                shots[path].seconds += seconds / len(paths)
            bar.update(done)
            idle.append(i)
    for chunk in queue:
        _fail(shots, chunk, "every worker's node was lost")
    if progress and overheads:
        wall = time.perf_counter() - started
        print(f"{len(actors)} workers, {matted} frames matted in {wall:.1f} s: {matted / wall:.1f} frames/s; "
              f"scheduling overhead {sum(overheads) / len(overheads) * 1000:.0f} ms per chunk")
    return written


def _first_line(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"


def _dead_nodes(ray) -> set:
    return {n["NodeID"] for n in ray.nodes() if not n["Alive"]}


def _fail(shots: dict, chunk: Chunk, why: str) -> None:
    shots[chunk.images[0] if chunk.images else chunk.shot].failures.append(f"{chunk.label()}: not matted ({why})")


def _drop_lost(ray, actors, nodes, lost, busy) -> None:
    """Kill (for good) the busy actors whose node Ray reports dead, adding them to `lost`: their tasks
    then fail at once and the chunks go to the other workers, rather than wait for a restart that no
    node may have room for."""
    dead = _dead_nodes(ray)
    for i in busy - lost:
        if nodes[i] in dead:
            ray.kill(actors[i], no_restart=True)
            lost.add(i)
