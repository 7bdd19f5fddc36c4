"""Live matting for hosts that render in real time: a worker thread that always mattes the newest
frame and hands back the newest finished alpha. The host's render thread never waits for the model."""
from __future__ import annotations

import os
import threading
import time

import cv2
import numpy as np

from .edges import adjust_edges
from .runtime import VideoMatter


def blurred(frame: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of `frame` (sigma px), computed at a scale where sigma is about 2 px and returned
    at that scale: blurred content has nothing finer to lose, and linear upsampling restores the size
    without the grid a sparse blur kernel leaves."""
    h, w = frame.shape[:2]
    k = max(1.0, sigma / 2.0)
    small = cv2.resize(frame, (max(1, round(w / k)), max(1, round(h / k))), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (0, 0), sigma / k, borderType=cv2.BORDER_REFLECT)


class LiveMatter:
    """submit() frames from the render thread (non-blocking, newest wins), each with a tag; mattes()
    returns the newest alphas with their tags, uint8 HxW, smoothed over time (video mode,
    `VideoMatter`, strength = smoothing) and edge-adjusted.

    make_matter: a callable returning a `cramatte.Matter`, called on the worker thread (a model that
    fails to load leaves `error` set and the host passes video through).
    channels: "rgba" or "bgra" order of submitted 4-channel uint8 frames.
    nice: raise the worker thread's niceness (Linux) so the host's render thread wins the CPU.
    blur: when above 0, the worker also makes a Gaussian-blurred copy of each frame (sigma `blur` px),
    small (`latest_background()`): a host's GPU stretches it back to the frame with linear filtering.
    """

    def __init__(self, make_matter, smoothing: float = 0.0, grow: float = 0.0, feather: float = 0.0,
                 channels: str = "rgba", nice: int = 0, blur: float = 0.0):
        self.nice, self.blur = nice, blur
        self._background: np.ndarray | None = None
        self.smoothing, self.grow, self.feather, self.channels = smoothing, grow, feather, channels
        self.error: str | None = None
        self.frames_done = 0
        self.last_ms = 0.0
        self._make = make_matter
        self._cond = threading.Condition()
        self._pending: tuple | None = None  # (frame, tag)
        self._mattes: list = []  # the newest few (tag, alpha, version), oldest first
        self._version = 0
        self._stop = False
        self._busy = False
        self._video = None
        self._thread = threading.Thread(target=self._run, name="cramatte-live", daemon=True)
        self._thread.start()

    KEEP = 16  # mattes kept for `mattes()`

    @property
    def idle(self) -> bool:
        """True when the worker would start on a submitted frame at once."""
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
            if self._video is not None:
                self._video.reset()

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self):
        if self.nice and hasattr(os, "setpriority"):
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError:
                pass
        try:
            video = self._video = VideoMatter(self._make(), strength=self.smoothing)
        except Exception as e:  # any load failure: report it, never take the host down
            self.error = f"{type(e).__name__}: {e}"
            return
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                (frame, tag), self._pending = self._pending, None
                self._busy = True
            try:
                start = time.perf_counter()
                rgb = frame[..., 2::-1] if self.channels == "bgra" else frame[..., :3]
                video.filter.strength = self.smoothing
                alpha = video(np.ascontiguousarray(rgb)).alpha
                if self.grow or self.feather:
                    alpha = adjust_edges(alpha, self.grow, self.feather)
                self._background = blurred(frame, self.blur) if self.blur > 0 else None
                self._version += 1
                matte = (tag, (alpha * 255 + 0.5).astype(np.uint8), self._version)
                self._mattes = (self._mattes + [matte])[-self.KEEP:]
                self.frames_done += 1
                self.last_ms = (time.perf_counter() - start) * 1e3
                self.error = None
            except Exception as e:
                self.error = f"{type(e).__name__}: {e}"
            finally:
                self._busy = False
