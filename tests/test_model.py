"""The two-stage network in PyTorch: shapes, batching, region selection, CRA neighbourhood, paste."""
import pytest
import torch

from cramatte.model import torch_regions as regions
from cramatte.model.configs import ARCH, CONFIGS, get_config
from cramatte.model.matting import CramatteNet


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return CramatteNet(**ARCH).eval()


@pytest.mark.parametrize("h,w", [(16, 16), (65, 97), (200, 120)])
def test_any_size_in_same_size_out(net, h, w):
    lh, lw = get_config("realtime").internal_size(h, w)
    with torch.no_grad():
        alpha = net(torch.rand(1, 3, h, w), torch.rand(1, 3, lh, lw), torch.tensor(50))
    assert alpha.shape == (1, 1, h, w)
    assert float(alpha.min()) >= 0 and float(alpha.max()) <= 1


def test_batch_equals_per_frame(net):
    src, lr = torch.rand(3, 3, 72, 88), torch.rand(3, 3, 64, 96)
    k = torch.tensor(30)
    with torch.no_grad():
        batched = net(src, lr, k)
        single = torch.cat([net(src[i:i + 1], lr[i:i + 1], k) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_select_masks_cells_without_unknown():
    p = torch.zeros(1, 4, 5)
    p[0, 1, 2], p[0, 3, 4] = 0.9, 0.5
    idx, valid = regions.select(p, torch.tensor(4))
    assert idx[0, :2].tolist() == [1 * 5 + 2, 3 * 5 + 4]
    assert valid[0].tolist() == [True, True, False, False]
    idx, _ = regions.select(p, torch.tensor(100))  # K is clamped to the grid
    assert idx.shape == (1, 20)


def test_neighbours_are_selected_adjacent_cells():
    # grid 3x4; selected cells 0 (0,0), 1 (0,1), 6 (1,2), 11 (2,3); 11 is invalid
    idx = torch.tensor([[0, 1, 6, 11]])
    valid = torch.tensor([[True, True, True, False]])
    ordinal, mask = regions.neighbours(idx, valid, 3, 4)
    centre = len(regions.NEIGHBOURS) // 2
    assert mask[0, :, centre].all()
    # cell 0's right neighbour (0, +1) is cell 1 = ordinal 1; its lower-right (1, 1) = cell 5: not selected
    right = regions.NEIGHBOURS.index((0, 1))
    assert mask[0, 0, right] and ordinal[0, 0, right] == 1
    assert not mask[0, 0, regions.NEIGHBOURS.index((1, 1))]
    # cell 1 sees cell 6 at (+1, +1); cell 6 does not see invalid cell 11 at (+1, +1)
    assert mask[0, 1, regions.NEIGHBOURS.index((1, 1))] and ordinal[0, 1, regions.NEIGHBOURS.index((1, 1))] == 2
    assert not mask[0, 2, regions.NEIGHBOURS.index((1, 1))]
    # nothing outside the grid
    assert not mask[0, 0, regions.NEIGHBOURS.index((-1, 0))]


def test_crop_and_paste_address_the_same_region():
    h, w = 24, 32
    img = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    idx = torch.tensor([[5, 0]])  # grid 3x4: cell 5 is row 1, col 1
    m = regions.MARGIN
    patches = regions.crop(torch.nn.functional.pad(img, (m, m, m, m), mode="replicate"), idx, w // 8)
    assert torch.equal(patches[0, 0, m:m + 8, m:m + 8], img[0, 0, 8:16, 8:16])
    blocks = torch.full((1, 2, 64), -1.0)
    out = regions.paste(img, blocks, idx, torch.tensor([[True, False]]))
    assert (out[0, 0, 8:16, 8:16] == -1).all()
    assert torch.equal(out[0, 0, :8, :8], img[0, 0, :8, :8])  # invalid cell left as it was
    out[0, 0, 8:16, 8:16] = img[0, 0, 8:16, 8:16]
    assert torch.equal(out, img)


def test_cra_lets_a_region_see_its_neighbour():
    """Changing a neighbouring region's pixels changes a region's output; a far region's does not."""
    torch.manual_seed(0)
    net = CramatteNet(**ARCH).refiner.eval()
    patches = torch.rand(3, 4, 12, 12)
    idx = torch.tensor([[0, 1, 7]])  # grid 2x6: cells 0 and 1 adjacent, 7 is (1,1): adjacent to both
    far = torch.tensor([[0, 1, 11]])  # cell 11 is (1, 5): no neighbour of cell 0
    valid = torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        for cells, changes in ((idx, True), (far, False)):
            ordinal, mask = regions.neighbours(cells, valid, 2, 6)
            base = net(patches, ordinal, mask)
            other = patches.clone()
            other[2] = torch.rand(4, 12, 12)
            out = net(other, ordinal, mask)
            assert (not torch.allclose(base[0, 0], out[0, 0], atol=1e-6)) == changes


def test_configs_named_in_one_registry():
    assert {"realtime", "fast", "quality"} <= set(CONFIGS)
    rt, fast, q = get_config("realtime"), get_config("fast"), get_config("quality")
    assert fast.internal < rt.internal <= q.internal
    assert q.regions(1080, 1920) > rt.regions(1080, 1920) and q.max_regions == 0  # quality refines every uncertain cell
    assert fast.internal_size(720, 1280) == (128, 256)
    assert rt.internal_size(1080, 1920) == (192, 320)
    assert rt.regions(256, 256) == rt.regions_per_edge * 64 < rt.max_regions  # small frames: per edge
    assert rt.regions(1080, 1920) == rt.regions(2160, 3840) == rt.max_regions  # large ones: capped
    with pytest.raises(ValueError, match="unknown configuration"):
        get_config("turbo")
