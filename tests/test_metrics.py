"""Metrics on hand-made cases with answers worked out by hand."""
import numpy as np
import pytest

from cramatte import metrics


def test_sad_mse_mad_known_values():
    gt = np.zeros((10, 10))
    pred = gt.copy()
    pred[:5] = 0.5  # 50 pixels off by 0.5
    assert metrics.sad(pred, gt) == pytest.approx(25 / 1000)
    assert metrics.mse(pred, gt) == pytest.approx(0.125 * 1e3)
    assert metrics.mad(pred, gt) == pytest.approx(0.25 * 1e3)
    mask = np.zeros((10, 10), bool)
    mask[4:6] = True  # 10 off by 0.5, 10 exact
    assert metrics.sad(pred, gt, mask) == pytest.approx(5 / 1000)
    assert metrics.mad(pred, gt, mask) == pytest.approx(0.25 * 1e3)


def test_perfect_prediction_scores_zero_everywhere():
    gt = np.zeros((40, 40))
    gt[10:30, 10:30] = 1
    gt[10:30, 30] = 0.5
    m = metrics.all_metrics(gt.copy(), gt)
    assert m["iou"] == 1.0
    for name in ("sad", "mse", "mad", "grad", "conn", "sad_u", "grad_u", "conn_u"):
        assert m[name] == pytest.approx(0, abs=1e-12), name


def test_grad_of_a_shifted_edge():
    gt = np.zeros((32, 32))
    gt[:, 16:] = 1
    assert metrics.grad(gt, gt) == 0
    shifted = np.roll(gt, 3, axis=1)
    assert metrics.grad(shifted, gt) > 0
    # a uniform offset changes no gradient
    assert metrics.grad(gt * 0.5 + 0.25, gt * 0.5 + 0.25) == 0


def test_conn_counts_a_disconnected_blob():
    gt = np.zeros((20, 20))
    gt[5:15, 5:15] = 1
    pred = gt.copy()
    pred[0:2, 0:2] = 1  # 4 pixels of foreground not connected to the body
    # for the blob, the largest component of (pred>=t & gt>=t) never includes it, so its level is 0:
    # phi_pred = 1 - 1 = 0 (d = 1 >= 0.15), phi_gt = 1 - 0 = 1 -> 4 pixels of error 1
    assert metrics.conn(pred, gt) == pytest.approx(4 / 1000)


def test_iou():
    gt = np.zeros((10, 10))
    gt[:, :5] = 1
    pred = np.zeros((10, 10))
    pred[:, 2:7] = 1  # intersection 30, union 70
    assert metrics.iou(pred, gt) == pytest.approx(30 / 70)


def test_dtssd():
    gts = np.zeros((3, 4, 4))
    assert metrics.dtssd(gts, gts) == 0
    preds = gts.copy()
    preds[1] = 0.1  # flicker up then down: each step differs by 0.1 everywhere
    assert metrics.dtssd(preds, gts) == pytest.approx(0.1 * 1e2)


def test_trimap_from_alpha():
    a = np.zeros((21, 21), np.float32)
    a[5:16, 5:16] = 1
    t = metrics.trimap_from_alpha(a, kernel=3)
    assert t[10, 10] == 2 and t[0, 0] == 0 and t[5, 5] == 1 and t[4, 10] == 1


def test_eval_cli_on_images_and_clips(tmp_path, sample, capsys):
    from cramatte.cli import main
    from cramatte.io import write_image
    from cramatte.synthetic import make_clip

    frames, alphas, _ = make_clip(sample[::4, ::4] / np.float32(255), np.zeros((128, 128), np.float32), frames=4)
    alphas[:, 40:90, 40:80] = 1.0  # any exact alpha will do for checking the bookkeeping
    for clip in ("a", "b"):
        for sub in ("image", "alpha"):
            (tmp_path / "clips" / clip / sub).mkdir(parents=True)
        for i, (f, a) in enumerate(zip(frames, alphas)):
            write_image(tmp_path / "clips" / clip / "image" / f"{i:03d}.png", f)
            write_image(tmp_path / "clips" / clip / "alpha" / f"{i:03d}.png", a)
    assert main(["eval", "--video", "--data", str(tmp_path / "clips")]) == 0
    out = capsys.readouterr().out
    assert "2 clips" in out and "per-frame" in out and "video mode" in out and "dtSSD" in out
    assert main(["eval", "--data", str(tmp_path / "clips" / "a"), "--out", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "metrics.csv").read_text().count("\n") == 5  # header + 4 frames
    assert (tmp_path / "ev" / "sheet.png").exists()
    assert main(["eval", "--data", str(tmp_path / "clips" / "a"), "--out", str(tmp_path / "ev2"), "--device", "npu"]) == 2
    assert "unknown device 'npu'" in capsys.readouterr().err  # --device reaches the runtime (it was once ignored)


def test_soft_share_and_mad_by_source():
    from cramatte.evaluate import by_source, soft_share

    a = np.zeros((10, 10), np.float32)
    a[:, :5] = 1
    a[0, :4] = 0.5
    assert soft_share(a) == 0.04
    rows = [{"image": "lfw__a.jpg", "mad": 50.0}, {"image": "lfw__b.jpg", "mad": 30.0},
            {"image": "ccp__c.jpg", "mad": 10.0}, {"image": "plain.jpg", "mad": 99.0}]
    assert by_source(rows) == {"lfw": (40.0, 2), "ccp": (10.0, 1)}


def test_far_alpha_sees_haze_away_from_the_subject_only():
    gt = np.zeros((100, 200), np.float32)
    gt[40:60, 90:110] = 1
    pred = gt.copy()
    pred[35:40, 90:110] = 0.5  # a soft edge next to the subject is not haze
    assert metrics.far_alpha(pred, gt) == 0
    pred[:5, :5] = 1  # a blob in the corner, 25 of the far pixels
    far = (np.hypot(*np.meshgrid(np.arange(200) - np.clip(np.arange(200), 90, 109),
                                 np.arange(100) - np.clip(np.arange(100), 40, 59))) > 10).sum()
    assert metrics.far_alpha(pred, gt) == pytest.approx(25 / far * 1e3, rel=0.05)
    assert np.isnan(metrics.far_alpha(pred, np.ones_like(gt)))  # nothing is far from a full-frame subject
