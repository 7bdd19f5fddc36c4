"""Video mode: flicker removed where nothing moves, no lag under camera motion, reset on scene cuts."""
import numpy as np
import pytest

from cramatte import FrameError, Matter, VideoMatter
from cramatte.metrics import dtssd
from cramatte.synthetic import make_clip
from cramatte.temporal import TemporalFilter


def _scene(seed=0, size=96):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (size // 8, size // 8, 3)).repeat(8, 0).repeat(8, 1).astype(np.float32)


def test_static_scene_flicker_is_damped():
    rgb = _scene()
    truth = np.zeros((96, 96), np.float32)
    truth[20:70, 30:60] = 1
    rng = np.random.default_rng(1)
    noisy = [np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1).astype(np.float32) for _ in range(12)]
    f = TemporalFilter(strength=0.7)
    out = [f(rgb, a) for a in noisy]
    assert dtssd(out, [truth] * 12) < 0.5 * dtssd(noisy, [truth] * 12)


def test_camera_shift_does_not_lag():
    rgb = _scene()
    alpha = np.zeros((96, 96), np.float32)
    alpha[20:70, 30:60] = 1
    f = TemporalFilter(strength=0.9)
    f(rgb, alpha)
    moved_rgb, moved_alpha = np.roll(rgb, 5, axis=1), np.roll(alpha, 5, axis=1)
    out = f(moved_rgb, moved_alpha)
    assert np.abs(out - moved_alpha)[:, 8:-8].max() < 0.05  # aligned before blending: no ghost of the old edge


def test_subject_and_background_moving_apart_leave_no_ghost():
    """The subject steps right while the background pans left: the matte is carried along the flow,
    so the old edge does not linger where the subject was."""
    bg = _scene(3, 128)
    fg = _scene(4, 128)
    alpha = np.zeros((128, 128), np.float32)
    alpha[30:100, 40:80] = 1
    f = TemporalFilter(strength=0.9)
    for t in range(3):
        a = np.roll(alpha, 3 * t, axis=1)
        rgb = a[..., None] * np.roll(fg, 3 * t, axis=1) + (1 - a[..., None]) * np.roll(bg, -3 * t, axis=1)
        out = f(rgb, a)
    err = np.abs(out - a)[16:-16, 16:-16]
    assert err.mean() < 0.005 and err.max() < 0.25


def test_scene_cut_resets():
    f = TemporalFilter(strength=0.9)
    f(_scene(0), np.ones((96, 96), np.float32))
    new = np.zeros((96, 96), np.float32)
    assert np.array_equal(f(_scene(5), new), new)


def test_video_matter_runs_in_order_and_refuses_batches(sample):
    video = VideoMatter(Matter(config="realtime"))
    frames, _, _ = make_clip(sample[::4, ::4] / np.float32(255), np.zeros((128, 128), np.float32), frames=3)
    for f in frames:
        m = video(f, foreground=True)
        assert m.alpha.shape == (128, 128) and m.foreground.shape == (128, 128, 3)
    with pytest.raises(FrameError, match="one frame at a time"):
        video(frames)
