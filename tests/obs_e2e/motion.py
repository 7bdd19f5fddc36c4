"""A moving subject with a known alpha for the OBS motion test: the sample portrait, cut out by its own
quality matte, crossing a textured background at SPEED px a frame, with its frame number written on
its chest as 7 black/white squares (readable wherever the matte keeps the chest opaque)."""
import cv2
import numpy as np

W, H, SUBJECT, FRAMES, SPEED, FPS = 512, 384, 288, 64, 3, 30
BITS, CELL = 7, 10
CODE_AT = (200, 100)  # (y, x) of the first square inside the subject (its chest)


def cutout(sample_rgb: np.ndarray):
    from cramatte import Matter

    rgb = cv2.resize(sample_rgb, (SUBJECT, SUBJECT), interpolation=cv2.INTER_AREA)
    alpha = Matter(config="quality")(rgb).alpha
    return rgb.astype(np.float32) / 255, alpha


def position(n: int) -> int:
    """The subject's left edge in frame n: across and back, SPEED px a frame."""
    span = W - SUBJECT
    x = (n * SPEED) % (2 * span)
    return x if x <= span else 2 * span - x


def background() -> np.ndarray:
    """A textured room-like background: smooth colour fields with some fine grain."""
    rng = np.random.default_rng(7)
    small = rng.uniform(0.2, 0.8, (H // 48, W // 48, 3)).astype(np.float32)
    field = cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    return np.clip(field + rng.normal(0, 0.03, field.shape), 0, 1).astype(np.float32)


def truth(n: int, alpha: np.ndarray) -> np.ndarray:
    out = np.zeros((H, W), np.float32)
    out[H - SUBJECT:, position(n):position(n) + SUBJECT] = alpha
    return out


def frame(n: int, rgb: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    sub = rgb.copy()
    y, x = CODE_AT
    for b in range(BITS):
        sub[y:y + CELL, x + b * CELL:x + (b + 1) * CELL] = float((n >> b) & 1)
    out = bg.copy()
    region = out[H - SUBJECT:, position(n):position(n) + SUBJECT]
    region[:] = alpha[..., None] * sub + (1 - alpha[..., None]) * region
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_clip(path, sample_rgb: np.ndarray) -> None:
    """FFV1 (lossless) so the squares survive; OBS's media source plays it in a loop."""
    import av

    rgb, alpha = cutout(sample_rgb)
    bg = background()
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        for n in range(FRAMES):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame(n, rgb, alpha, bg), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def decode(shot_rgb: np.ndarray):
    """The frame number a screenshot shows, or None: the code read where frame n would hold it."""
    y = H - SUBJECT + CODE_AT[0] + CELL // 2
    for n in range(FRAMES):
        x0 = position(n) + CODE_AT[1] + CELL // 2
        cells = [shot_rgb[y, x0 + b * CELL].astype(int).mean() for b in range(BITS)]
        if all(c > 200 or c < 55 for c in cells) and sum((c > 127) << b for b, c in enumerate(cells)) == n:
            return n
    return None
