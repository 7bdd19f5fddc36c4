"""Region selection on the 8x8 grid of the full-resolution frame: crop, neighbourhood, paste back."""
import torch

REGION = 8  # region side in full-resolution pixels
MARGIN = 2  # context pixels around each region seen by the refiner's unpadded convs
NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]  # 3x3 grid, self in the middle


def select(p_unknown: torch.Tensor, k: torch.Tensor, min_p: float = 0.01):
    """Static top-K cells of p(unknown) [N, Hg, Wg] -> (indices [N, K] int64, valid [N, K] bool).

    K = min(k, Hg * Wg); cells whose p(unknown) is below `min_p` are marked invalid and left unrefined.
    """
    flat = p_unknown.flatten(1)
    k = torch.minimum(k.to(torch.int64), torch.tensor(flat.shape[1], dtype=torch.int64))
    scores, idx = torch.topk(flat, k, dim=1)
    return idx, scores > min_p


def crop(x: torch.Tensor, idx: torch.Tensor, grid_w: int) -> torch.Tensor:
    """Crop (8 + 2*MARGIN)^2 windows around the selected regions of x [N, C, Hp, Wp].

    x must be padded by MARGIN on every side already; returns [N*K, C, S, S].
    """
    n, c, _, w = x.shape
    size = REGION + 2 * MARGIN
    offs = torch.arange(size, device=x.device)
    top = torch.div(idx, grid_w, rounding_mode="floor") * REGION
    left = (idx % grid_w) * REGION
    rows = (top[..., None] + offs)[..., :, None] * w  # [N, K, S, 1]
    cols = (left[..., None] + offs)[..., None, :]  # [N, K, 1, S]
    flat = (rows + cols).flatten(1)  # [N, K*S*S]
    out = torch.gather(x.flatten(2), 2, flat[:, None, :].expand(n, c, flat.shape[1]))
    return out.reshape(n, c, -1, size, size).transpose(1, 2).reshape(-1, c, size, size)


def neighbours(idx: torch.Tensor, valid: torch.Tensor, grid_h: int, grid_w: int):
    """For each selected cell, the ordinals (within its image) of selected cells in its 3x3 neighbourhood.

    Returns (ordinal [N, K, 9] int64, mask [N, K, 9] bool); the middle entry is the cell itself.
    """
    n, k = idx.shape
    ordinal = torch.arange(k, device=idx.device).expand(n, k)
    grid = torch.full((n, grid_h * grid_w), -1, dtype=torch.int64, device=idx.device)
    grid = grid.scatter(1, idx, torch.where(valid, ordinal, -1))
    gy = torch.div(idx, grid_w, rounding_mode="floor")
    gx = idx % grid_w
    dy = torch.tensor([d[0] for d in NEIGHBOURS], device=idx.device)
    dx = torch.tensor([d[1] for d in NEIGHBOURS], device=idx.device)
    ny, nx = gy[..., None] + dy, gx[..., None] + dx  # [N, K, 9]
    inside = (ny >= 0) & (ny < grid_h) & (nx >= 0) & (nx < grid_w)
    cell = (ny.clamp(0, grid_h - 1) * grid_w + nx.clamp(0, grid_w - 1)).flatten(1)
    found = torch.gather(grid, 1, cell).reshape(n, k, len(NEIGHBOURS))
    mask = inside & (found >= 0)
    mask[..., len(NEIGHBOURS) // 2] = True
    return found.clamp(min=0), mask


def paste(alpha: torch.Tensor, blocks: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Write refined 8x8 blocks [N, K, 64] into alpha [N, 1, Hp, Wp] where valid."""
    n, _, h, w = alpha.shape
    gh, gw = h // REGION, w // REGION
    cells = alpha.reshape(n, gh, REGION, gw, REGION).permute(0, 1, 3, 2, 4).reshape(n, gh * gw, REGION * REGION)
    index = idx[..., None].expand(-1, -1, REGION * REGION)
    old = torch.gather(cells, 1, index)
    cells = cells.scatter(1, index, torch.where(valid[..., None], blocks, old))
    return cells.reshape(n, gh, gw, REGION, REGION).permute(0, 1, 3, 2, 4).reshape(n, 1, h, w)
