"""Training data: known folder layouts, cut-outs, deterministic augmented samples."""
import os
import shutil

import cv2
import numpy as np
import pytest
import torch

from cramatte.model.configs import internal_size
from cramatte.train.data import Batches, MattingData, find_cutouts, find_pairs
from cramatte.train.store import open_store


def make_set(root, n=4, size=48, layout=("image", "alpha"), seed=0):
    """n synthetic portraits (a bright disc on noise) with exact alpha, in the given folder layout."""
    rng = np.random.default_rng(seed)
    (root / layout[0]).mkdir(parents=True)
    (root / layout[1]).mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        r = rng.uniform(0.2, 0.35) * size
        alpha = np.clip(r - np.hypot(yy - size / 2, xx - size / 2) + 0.5, 0, 1)
        img = rng.integers(0, 255, (size, size, 3)).astype(np.float32)
        colour = rng.integers(0, 255, 3)
        img = alpha[..., None] * colour + (1 - alpha[..., None]) * img
        cv2.imwrite(str(root / layout[0] / f"p{i}.jpg"), img.astype(np.uint8))
        cv2.imwrite(str(root / layout[1] / f"p{i}.png"), (alpha * 255).astype(np.uint8))
    return root


def make_backgrounds(root, n=3, size=64):
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        cv2.imwrite(str(root / f"bg{i}.jpg"), rng.integers(0, 255, (size, size, 3)).astype(np.uint8))
    return root


@pytest.mark.parametrize("layout", [("image", "alpha"), ("image", "matte"), ("blurred_image", "mask"),
                                    ("original", "mask")])
def test_known_layouts(tmp_path, layout):
    make_set(tmp_path, n=3, layout=layout)
    pairs = find_pairs(tmp_path)
    assert [(a.stem, b.stem) for a, b in pairs] == [("p0", "p0"), ("p1", "p1"), ("p2", "p2")]


def test_cutouts_and_samples_are_deterministic(tmp_path):
    make_set(tmp_path / "set")
    cut = tmp_path / "cut"
    cut.mkdir()
    rgba = np.zeros((40, 30, 4), np.uint8)
    rgba[10:30, 5:25] = (0, 0, 255, 255)
    cv2.imwrite(str(cut / "c.png"), rgba)
    assert [p.name for p in find_cutouts(cut)] == ["c.png"]
    stores = [open_store(s, tmp_path / "store", log=lambda *_: None) for s in
              (find_pairs(tmp_path / "set"), find_cutouts(cut), sorted(make_backgrounds(tmp_path / "bg").iterdir()))]
    data = MattingData(*stores, size=64, cutout_prob=0.5)
    a, b = data[7], data[7]
    for key in a:
        assert torch.equal(a[key], b[key])
    assert a["image"].shape == (3, 64, 64) and a["alpha"].shape == (1, 64, 64)
    assert a["trimap"].dtype == torch.int64 and set(a["trimap"].unique().tolist()) <= {0, 1, 2}
    # a composite is exactly alpha * fg + (1 - alpha) * bg before camera artefacts; check it loosely
    for i in range(20):
        s = data[i]
        if s["composite"] > 0:
            comp = s["alpha"] * s["fg"] + (1 - s["alpha"]) * s["bg"]
            assert (comp - s["image"]).abs().mean() < 0.1
            break
    else:
        pytest.fail("no composite among 20 samples")


def test_no_data_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no training data"):
        MattingData([], [], [])


def test_store_prepares_once_and_keeps_the_photos(tmp_path):
    make_set(tmp_path / "set", n=3, size=40)
    pairs = find_pairs(tmp_path / "set")
    store = open_store(pairs, tmp_path / "store", log=lambda *_: None)
    assert len(store) == 3 and store.names == ["p0", "p1", "p2"]
    item = store[1]
    assert item["rgb"].shape == (40, 40, 3) and item["alpha"].shape == (40, 40) and item["fg"].shape == (40, 40, 3)
    rgb = cv2.cvtColor(cv2.imread(str(pairs[1][0])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(item["rgb"], rgb)
    assert np.array_equal(item["alpha"], cv2.imread(str(pairs[1][1]), cv2.IMREAD_UNCHANGED))
    stamp = (store.folder / "rgb.u8").stat().st_mtime_ns
    assert open_store(pairs, tmp_path / "store", log=lambda m: pytest.fail(f"rebuilt: {m}")).folder == store.folder
    assert (store.folder / "rgb.u8").stat().st_mtime_ns == stamp
    shutil.copytree(tmp_path / "set", tmp_path / "copy")  # the same photos laid anew: new times, same store
    os.utime(tmp_path / "copy" / pairs[0][0].relative_to(tmp_path / "set"), ns=(1, 1))
    copied = open_store(find_pairs(tmp_path / "copy"), tmp_path / "store", log=lambda m: pytest.fail(f"rebuilt: {m}"))
    assert copied.folder == store.folder
    cv2.imwrite(str(pairs[0][0]), rgb)  # a changed source is a new store
    assert open_store(pairs, tmp_path / "store", log=lambda *_: None).folder != store.folder


def test_whole_frames_have_the_runtime_input_shape_and_exclusions_hold(tmp_path):
    make_set(tmp_path / "set", n=4, size=48)
    wide = tmp_path / "set" / "image" / "wide.jpg"
    cv2.imwrite(str(wide), np.full((60, 200, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "set" / "alpha" / "wide.png"), np.zeros((60, 200), np.uint8))
    store = open_store(find_pairs(tmp_path / "set"), tmp_path / "store", log=lambda *_: None)
    data = MattingData(store, [], [], size=64, exclude={"p0"})
    assert [store.names[i] for i in data.photo_ids] == ["p1", "p2", "p3", "wide"]
    batches = Batches(data, 3, whole_prob=1.0, internal=320)
    shapes = set()
    for step in range(12):
        b = batches[step]
        n, c, h, w = b["image_lr"].shape
        assert (n, c) == (3, 3) and b["alpha"].shape == (3, 1, h, w) and b["trimap"].shape == (3, h, w)
        shapes.add((h, w))
    assert shapes == {internal_size(48, 48, 320), internal_size(60, 200, 320)}
    for key, value in batches[5].items():
        assert torch.equal(value, batches[5][key])
    crops = Batches(data, 2)[0]
    assert crops["image"].shape == (2, 3, 64, 64)


def test_hard_photos_come_back_in_proportion_to_the_root_of_their_error(tmp_path):
    make_set(tmp_path / "set", n=3, size=32)
    store = open_store(find_pairs(tmp_path / "set"), tmp_path / "store", log=lambda *_: None)
    data = MattingData(store, [], [], size=32, hardness={"p0": 1.0, "p1": 16.0})  # p2 unscored: the median, 8.5
    counts = np.bincount([data._photo(np.random.default_rng(i)) for i in range(4000)], minlength=3)
    expected = np.sqrt([1.0, 16.0, 8.5]) / np.sqrt([1.0, 16.0, 8.5]).sum()
    assert np.allclose(counts / counts.sum(), expected, atol=0.03)
    plain = MattingData(store, [], [], size=32)
    assert np.allclose(np.bincount([plain._photo(np.random.default_rng(i)) for i in range(3000)]) / 3000, 1 / 3,
                       atol=0.04)
