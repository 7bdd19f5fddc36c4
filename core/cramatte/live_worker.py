"""The child process behind `cramatte.live.LiveMatter`: `python -m cramatte.live_worker`.

Reads messages from stdin (a start message, then frames with the current settings) and answers each on
stdout with its alpha and, while blurring, a small blurred copy of the frame. Ends at end of input."""
import os
import signal
import sys
import time

import cv2
import numpy as np

from .edges import adjust_edges
from .live_protocol import receive, send


def blurred(frame: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of `frame` (sigma px), computed at a scale where sigma is about 2 px and returned
    at that scale: blurred content has nothing finer to lose, and linear upsampling restores the size
    without the grid a sparse blur kernel leaves."""
    h, w = frame.shape[:2]
    k = max(1.0, sigma / 2.0)
    small = cv2.resize(frame, (max(1, round(w / k)), max(1, round(h / k))), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (0, 0), sigma / k, borderType=cv2.BORDER_REFLECT)


def matte(video, frame: np.ndarray, meta: dict) -> tuple:
    """(alpha uint8 HxW, blurred frame or None) of one 4-channel uint8 frame with the settings in `meta`."""
    rgb = frame[..., 2::-1] if meta["channels"] == "bgra" else frame[..., :3]
    video.filter.strength = meta["smoothing"]
    alpha = video(np.ascontiguousarray(rgb)).alpha
    if meta["grow"] or meta["feather"]:
        alpha = adjust_edges(alpha, meta["grow"], meta["feather"])
    background = blurred(frame, meta["blur"]) if meta["blur"] > 0 else None
    return (alpha * 255 + 0.5).astype(np.uint8), background


def serve(inp, out) -> None:
    start = receive(inp)
    if start is None:
        return
    meta = start[0]
    if meta.get("nice") and hasattr(os, "nice"):
        os.nice(meta["nice"])  # before the model's threads start: they inherit it
    try:
        from .runtime import Matter, VideoMatter
        video = VideoMatter(Matter(**meta["matter"]))
    except Exception as e:  # any load failure goes back to the host as text
        send(out, {"error": f"{type(e).__name__}: {e}"})
        return
    send(out, {"ready": True})
    while (message := receive(inp)) is not None:
        meta, payload = message
        if meta.get("reset"):
            video.reset()
        begin = time.perf_counter()
        try:
            frame = np.frombuffer(payload, np.uint8).reshape(meta["shape"])
            alpha, background = matte(video, frame, meta)
        except Exception as e:
            send(out, {"error": f"{type(e).__name__}: {e}"})
            continue
        ms = (time.perf_counter() - begin) * 1e3
        if background is None:
            send(out, {"ms": ms, "alpha": alpha.shape}, alpha)
        else:
            send(out, {"ms": ms, "alpha": alpha.shape, "background": background.shape}, alpha, background)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the host's terminal is for the host; it ends us
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot corrupt the answers
    serve(os.fdopen(os.dup(sys.stdin.fileno()), "rb", buffering=0), out)


if __name__ == "__main__":
    main()
