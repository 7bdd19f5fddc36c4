"""Training photos decoded once: RGB, alpha and foreground colour in flat memory-mapped uint8 files.

Decoding, resizing to the training size limit and the multi-level foreground estimate are the same for
a photo every time; a store does them once (in parallel processes) and every later sample is a view into the
page cache, shared by the loader's processes. A store is keyed by its sources' names and contents (not
their times: a data set copied anew keeps its store) and settings, built in a private folder and renamed
into place only when complete.
"""
import contextlib
import hashlib
import json
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from .. import io

VERSION = 1
FIELDS = {"rgb": 3, "alpha": 1, "fg": 3}


def _limit(img: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(img.shape[:2])
    return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img


def prepare(source, max_side: int) -> dict:
    """One item: (image, alpha) path pair, an RGBA cut-out path, or an image path (backgrounds, no alpha)."""
    from .augment import estimate_foreground

    if isinstance(source, (tuple, list)):
        rgb, alpha = io.read_rgb(source[0]), io.read_alpha(source[1])
        if alpha.shape != rgb.shape[:2]:
            alpha = cv2.resize(alpha, rgb.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    elif Path(source).suffix.lower() in (".png", ".webp", ".tif", ".tiff") and _has_alpha(source):
        rgb, alpha = io.read_cutout(source)
    else:
        return {"rgb": _limit(io.read_rgb(source), max_side)}
    h, w = rgb.shape[:2]
    rgb = _limit(rgb, max_side)
    alpha = np.clip(cv2.resize(alpha, rgb.shape[1::-1], interpolation=cv2.INTER_AREA) if rgb.shape[0] != h else alpha,
                    0, 1)
    fg = estimate_foreground(rgb.astype(np.float32) / 255, alpha)
    return {"rgb": rgb, "alpha": io.quantize(alpha, 8), "fg": io.quantize(fg, 8), "size": [h, w]}


def _has_alpha(path) -> bool:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return img is not None and img.ndim == 3 and img.shape[2] == 4


def _key(sources: list, max_side: int) -> str:
    h = hashlib.sha256(f"{VERSION} {max_side}".encode())
    for s in sources:
        for p in (s if isinstance(s, (tuple, list)) else [s]):
            with open(p, "rb") as f:
                h.update(f"{Path(p).name} {hashlib.file_digest(f, 'blake2b').hexdigest()}\n".encode())
    return h.hexdigest()[:16]


class Store:
    """Items of a store: `store[i]` is a dict of uint8 arrays (`rgb` HxWx3, and for labelled items
    `alpha` HxW and `fg` HxWx3) plus `size`, the source's own (h, w) before the size limit."""

    def __init__(self, folder):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "index.json").read_text())
        self.items, self.names = meta["items"], meta["names"]
        self._maps = {}

    def _map(self, field: str):
        if field not in self._maps:  # opened lazily: loader processes map the files themselves
            self._maps[field] = np.memmap(self.folder / f"{field}.u8", np.uint8, "r")
        return self._maps[field]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        item = self.items[i]
        h, w = item["shape"]
        out = {"size": tuple(item["size"])}
        for field, offset in item["offsets"].items():
            c = FIELDS[field]
            arr = self._map(field)[offset:offset + h * w * c]
            out[field] = arr.reshape((h, w, c) if c > 1 else (h, w))
        return out

    def __getstate__(self):
        return {"folder": self.folder, "items": self.items, "names": self.names, "_maps": {}}


def open_store(sources: list, root, max_side: int = 640, workers: int = 1, log=print) -> Store:
    """The store of `sources` under `root`, built first if there is none for them yet."""
    root = Path(root)
    folder = root / _key(sources, max_side)
    if (folder / "index.json").exists():
        return Store(folder)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    try:
        log(f"preparing {len(sources)} training items once into {folder} ({workers} processes)")
        files = {f: open(tmp / f"{f}.u8", "wb") for f in FIELDS}
        items, names = [], []
        with contextlib.ExitStack() as stack:
            mapper = map
            if workers > 1:
                mapper = stack.enter_context(ProcessPoolExecutor(workers, mp_context=get_context("spawn"))).map
            for n, (src, item) in enumerate(zip(sources, mapper(prepare, sources, [max_side] * len(sources)))):
                offsets = {}
                for f, arr in item.items():
                    if f in FIELDS:
                        offsets[f] = files[f].tell()
                        files[f].write(np.ascontiguousarray(arr).tobytes())
                h, w = item["rgb"].shape[:2]
                items.append({"shape": [h, w], "size": item.get("size", [h, w]), "offsets": offsets})
                names.append(Path(src[0] if isinstance(src, (tuple, list)) else src).stem)
                if (n + 1) % 500 == 0:
                    log(f"prepared {n + 1}/{len(sources)}")
        for f in files.values():
            f.close()
        (tmp / "index.json").write_text(json.dumps({"version": VERSION, "items": items, "names": names}))
        try:
            tmp.rename(folder)
        except OSError:  # another process finished the same store first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Store(folder)
