"""Live matting for hosts that render in real time. The model runs in a child process
(`cramatte.live_worker`), so the host's interpreter, whose lock its render thread needs for every
callback, never waits on inference; a thread here hands the child the newest frame and keeps the newest
finished alphas. The host's render thread never waits for the model."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from .live_protocol import receive, send


def python_interpreter(env: str = "") -> str | None:
    """A Python that can run cramatte: the one in the environment `env` when given, else this process's
    (a host that embeds Python is not one: then the same version found on PATH)."""
    if env:
        for candidate in (Path(env) / "bin" / "python", Path(env) / "Scripts" / "python.exe",
                          Path(env) / "python.exe"):  # a venv on POSIX, a venv on Windows, a conda env there
            if candidate.is_file():
                return str(candidate)
    if Path(sys.executable).name.lower().startswith("python") and Path(sys.executable).is_file():
        return sys.executable
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return shutil.which(f"python{version}") or shutil.which("python3") or shutil.which("python")


def _child_env() -> dict:
    """The environment for a child run by an interpreter found on PATH: this process's site-packages
    folders on its import path too (a host may have added an environment's at run time)."""
    sites = [p for p in sys.path if p.rstrip("/\\").endswith(("site-packages", "dist-packages"))]
    env = dict(os.environ)
    paths = sites + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


class LiveMatter:
    """submit() frames from the render thread (non-blocking, newest wins), each with a tag; mattes()
    returns the newest alphas with their tags, uint8 HxW, smoothed over time (video mode,
    `VideoMatter`, strength = smoothing) and edge-adjusted.

    matter: keyword arguments of `cramatte.Matter` for the child (a model that fails to load leaves
    `error` set and the host passes video through; so does a child that dies).
    channels: "rgba" or "bgra" order of submitted 4-channel uint8 frames.
    nice: the child's niceness (below-normal priority on Windows) so the host's threads win the CPU.
    blur: when above 0, the child also makes a Gaussian-blurred copy of each frame (sigma `blur` px),
    small (`latest_background()`): a host's GPU stretches it back to the frame with linear filtering.
    python: the interpreter for the child, one whose environment has cramatte (e.g.
    `python_interpreter(env)`); by default this process's, or one of its version on PATH, given this
    process's import path.
    smoothing, grow, feather and blur may be changed at any time; they apply from the next frame.
    """

    KEEP = 16  # mattes kept for `mattes()`

    def __init__(self, matter: dict, smoothing: float = 0.0, grow: float = 0.0, feather: float = 0.0,
                 channels: str = "rgba", nice: int = 0, blur: float = 0.0, python: str | None = None):
        self.matter, self.nice, self.channels = dict(matter), nice, channels
        self.smoothing, self.grow, self.feather, self.blur = smoothing, grow, feather, blur
        self.error: str | None = None
        self.frames_done = 0
        self.last_ms = 0.0
        self._background: np.ndarray | None = None
        self._cond = threading.Condition()
        self._pending: tuple | None = None  # (frame, tag)
        self._mattes: list = []  # the newest few (tag, alpha, version), oldest first
        self._version = 0
        self._stop = False
        self._busy = True  # until the model is loaded
        self._reset = False
        self.proc = None
        python, given = python or python_interpreter(), python
        env = None if given or python == sys.executable else _child_env()
        if python is None:
            self.error = "no Python interpreter found to run the model in"
            return
        flags = 0
        if os.name == "nt":
            flags = subprocess.CREATE_NO_WINDOW | (subprocess.BELOW_NORMAL_PRIORITY_CLASS if nice > 0 else 0)
        self._stderr = tempfile.TemporaryFile()  # what the child says, for the error when it ends
        try:
            self.proc = subprocess.Popen([python, "-m", "cramatte.live_worker"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr, env=env,
                                         creationflags=flags, cwd=Path(__file__).resolve().parents[1])
        except OSError as e:
            self._stderr.close()
            self.error = f"cannot start {python} for the model: {e}"
            return
        self._thread = threading.Thread(target=self._run, name="cramatte-live", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        """True when the model would start on a submitted frame at once."""
        return not self._busy and self._pending is None

    def submit(self, frame: np.ndarray, tag=None) -> None:
        """Hand over a frame; `tag` (e.g. the host's frame number) comes back with its matte."""
        with self._cond:
            self._pending = (frame, tag)
            self._cond.notify()

    def mattes(self) -> list:
        """The newest mattes as (tag, alpha uint8 HxW, version), oldest first; version grows by one per
        finished frame."""
        return list(self._mattes)

    def latest_background(self) -> tuple:
        """(blurred RGBA uint8 frame, at most the frame's size, or None; version of the alpha it came with)."""
        return self._background, self._version

    def reset(self) -> None:
        """Forget the temporal state (a new scene or a resized source)."""
        with self._cond:
            self._mattes = []
            self._reset = True

    def close(self, timeout: float = 1.0) -> None:
        """Stop the child at once (it holds nothing but the model) and its thread here."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        self._thread.join(timeout)

    def _run(self):
        proc = self.proc
        try:
            with proc.stdin, proc.stdout:
                self._serve(proc.stdin, proc.stdout)
        except (OSError, ValueError):  # the child went away mid-message
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:
                proc.kill()
            self.error = self._ended()
        finally:
            self._stderr.close()

    def _serve(self, inp, out):
        send(inp, {"matter": self.matter, "nice": self.nice})  # on Windows the priority class does it
        answer = receive(out)
        if answer is None or "error" in answer[0]:
            self.error = answer[0]["error"] if answer else self._ended()
            return
        self._busy = False
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                (frame, tag), self._pending = self._pending, None
                reset, self._reset = self._reset, False
                self._busy = True
            try:
                meta = {"shape": frame.shape, "channels": self.channels, "smoothing": self.smoothing,
                        "grow": self.grow, "feather": self.feather, "blur": self.blur, "reset": reset}
                send(inp, meta, frame)
                answer = receive(out)
                if answer is None:
                    self.error = self._ended()
                    return
                self._store(tag, *answer)
            finally:
                self._busy = False

    def _store(self, tag, meta: dict, payload: bytearray) -> None:
        if "error" in meta:
            self.error = meta["error"]
            return
        data = np.frombuffer(payload, np.uint8)
        size = int(np.prod(meta["alpha"]))
        alpha = data[:size].reshape(meta["alpha"])
        self._background = data[size:].reshape(meta["background"]) if "background" in meta else None
        self._version += 1
        self._mattes = (self._mattes + [(tag, alpha, self._version)])[-self.KEEP:]
        self.frames_done += 1
        self.last_ms = meta["ms"]
        self.error = None

    def _ended(self) -> str | None:
        code = self.proc.wait()
        if self._stop:
            return None
        self._stderr.seek(0)
        said = [line for line in self._stderr.read().decode(errors="replace").splitlines() if line.strip()]
        return f"the matting process ended (exit code {code})" + (f": {said[-1].strip()}" if said else "")
