"""Region refinement glue for inference, in numpy: the runtime twin of `cramatte.model.torch_regions`.

Between the two ONNX graphs the runtime picks the 8x8 cells to refine, gathers their windows straight
from the caller's frame (no full-resolution float copy; clamped indices stand in for replicate
padding), and writes the refined blocks back. Only cells worth refining are sent to the refiner.
"""
import numpy as np

REGION = 8  # region side in full-resolution pixels
MARGIN = 2  # context pixels around each region
SIZE = REGION + 2 * MARGIN
_DY = np.repeat(np.arange(-1, 2), 3)  # 3x3 neighbourhood in `model.torch_regions.NEIGHBOURS` order
_DX = np.tile(np.arange(-1, 2), 3)


def grid_shape(h: int, w: int) -> tuple:
    return -(-h // REGION), -(-w // REGION)


def select(p_grid: np.ndarray, k: int, min_p: float = 0.01) -> np.ndarray:
    """Flat indices of the top-k cells of p(unknown) [Hg, Wg] whose p exceeds min_p, best first."""
    flat = p_grid.ravel()
    k = min(k, flat.size)
    idx = np.argpartition(-flat, k - 1)[:k] if k < flat.size else np.arange(flat.size)
    idx = idx[np.argsort(-flat[idx], kind="stable")]
    return idx[flat[idx] > min_p]


def neighbours(idx: np.ndarray, grid_h: int, grid_w: int) -> tuple:
    """(ordinal [K, 9] int64, mask [K, 9] bool) of the selected cells in each one's 3x3 neighbourhood."""
    grid = np.full(grid_h * grid_w, -1, np.int64)
    grid[idx] = np.arange(len(idx))
    gy, gx = np.divmod(idx, grid_w)
    ny, nx = gy[:, None] + _DY, gx[:, None] + _DX
    inside = (ny >= 0) & (ny < grid_h) & (nx >= 0) & (nx < grid_w)
    found = grid[np.clip(ny, 0, grid_h - 1) * grid_w + np.clip(nx, 0, grid_w - 1)]
    mask = inside & (found >= 0)
    mask[:, len(_DY) // 2] = True
    return np.maximum(found, 0), mask


def crop(rgb: np.ndarray, alpha: np.ndarray, idx: np.ndarray, grid_w: int) -> np.ndarray:
    """Windows around the selected cells: rgb [H, W, 3] (uint8, or float in [0, 1]) and the coarse
    alpha [H, W] -> patches [K, 4, SIZE, SIZE] float32, edges replicated."""
    h, w = alpha.shape
    gy, gx = np.divmod(idx, grid_w)
    offs = np.arange(-MARGIN, REGION + MARGIN)
    rows = np.clip(gy[:, None] * REGION + offs, 0, h - 1)
    cols = np.clip(gx[:, None] * REGION + offs, 0, w - 1)
    flat = (rows[:, :, None] * w + cols[:, None, :]).reshape(len(idx), SIZE * SIZE)
    out = np.empty((len(idx), 4, SIZE * SIZE), np.float32)
    out[:, :3] = np.take(rgb.reshape(-1, 3), flat, axis=0).transpose(0, 2, 1)
    if rgb.dtype == np.uint8:
        out[:, :3] *= np.float32(1 / 255)
    out[:, 3] = np.take(alpha.reshape(-1), flat)
    return out.reshape(len(idx), 4, SIZE, SIZE)


def paste(alpha: np.ndarray, blocks: np.ndarray, idx: np.ndarray, grid_w: int) -> None:
    """Write refined blocks [K, 64] into alpha [H, W] in place; blocks over the frame's edge are cut."""
    h, w = alpha.shape
    gy, gx = np.divmod(idx, grid_w)
    blocks = blocks.reshape(-1, REGION, REGION)
    inside = ((gy + 1) * REGION <= h) & ((gx + 1) * REGION <= w)
    cells = alpha[:h - h % REGION, :w - w % REGION]
    cells.shape = (h // REGION, REGION, w // REGION, REGION)  # a view: raises rather than copy
    cells[gy[inside], :, gx[inside], :] = blocks[inside]
    for y, x, block in zip(gy[~inside] * REGION, gx[~inside] * REGION, blocks[~inside]):
        alpha[y:y + REGION, x:x + REGION] = block[:h - y, :w - x]
