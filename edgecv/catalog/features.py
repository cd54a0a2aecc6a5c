"""What a product crop looks like, as one vector: the recognition embedding of the catalogue.

``embed(image, boxes)`` cuts each box out of the full-resolution BGR image and describes it with three
hand-made parts, each L2-normalised, weighted and concatenated, the whole L2-normalised so that a dot
product is a cosine similarity:

- colour layout: the crop on a 4x4 grid, per cell the mean chromaticity (r, g) and intensity divided by
  the crop's mean intensity: a brighter or darker shelf (exposure) leaves it unchanged;
- colour histogram: a soft 2-D histogram of chromaticity over the crop (where the pack's colours are
  matters less than which colours it has, so a slightly shifted box still matches);
- shape and print: a HOG descriptor of the grey crop at 32x32 (edges of the artwork and lettering,
  contrast-normalised per block).

No model file and no training: the same vector for a reference pack shot and a crop from a shelf photo,
so a catalogue of a store's own products needs only a few photos per SKU. Costs ~0.1 ms per crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgecv.catalog import learned

SIZE = 24  # crops are resized to SIZE x SIZE (both references and shelf crops, so aspect is consistent)
MARGIN = 0.04  # share of the box cut from each side: detector boxes carry some background
GRID = 4
HIST_BINS = 6
WEIGHTS = {"layout": 1.0, "hist": 0.8, "hog": 1.0, "aspect": 0.5, "hand": 1.0, "learned": 1.0}
ASPECT_BINS = np.linspace(-1.6, 1.2, 15, dtype=np.float32)  # log(width / height) of the crop, soft-binned
ASPECT_SIGMA = 0.12

CELL, ORIENT = 6, 9  # HOG: 6-px cells, 9 unsigned orientations, blocks of 2x2 cells at a one-cell stride
_NC = SIZE // CELL
DIM = GRID * GRID * 3 + HIST_BINS * HIST_BINS + (_NC - 1) ** 2 * 4 * ORIENT + len(ASPECT_BINS)


def crop(image: np.ndarray, box) -> np.ndarray | None:
    """The inside of ``box`` (x1, y1, x2, y2 pixels), MARGIN trimmed; None when under 4 px either way."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * MARGIN, (y2 - y1) * MARGIN
    a, b = int(max(0, np.floor(x1 + mx))), int(max(0, np.floor(y1 + my)))
    c, d = int(min(w, np.ceil(x2 - mx))), int(min(h, np.ceil(y2 - my)))
    if c - a < 4 or d - b < 4:
        return None
    return image[b:d, a:c]


def describe(patch: np.ndarray) -> np.ndarray:
    """The embedding of one BGR crop (any size from 4x4 up), float32 [DIM], unit length."""
    return _describe([patch])[0]


def _resized(patches: list[np.ndarray], size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(crops resized to size x size [n, size, size, 3], their aspect ratios w / h [n])."""
    small = np.stack([cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA) for p in patches])
    return small, np.array([p.shape[1] / p.shape[0] for p in patches], np.float32)


def _describe(patches: list[np.ndarray]) -> np.ndarray:
    """The full embedding of BGR crops: the hand-made part, and the learned part where it is installed."""
    hand = describe_batch(*_resized(patches))
    model = learned.embedder()
    if model is None:
        return hand
    big, _ = _resized(patches, learned.SIZE)
    both = np.concatenate([WEIGHTS["hand"] * hand, WEIGHTS["learned"] * model.embed(big)], axis=1)
    return _l2_rows(both).astype(np.float32)


FEATURES_VERSION = 1  # bump when the hand-made part changes: cached reference embeddings are then stale


def signature() -> str:
    """What made an embedding (hand-made part version, learned model's sha256): the catalogue's cached
    reference embeddings are used only when it matches, so a new edgecv never mixes old and new ones."""
    model = learned.embedder()
    return f"hand{FEATURES_VERSION}-{SIZE}:{model.sha256[:16] if model is not None else 'none'}"


def dim() -> int:
    """Length of the embedding this installation makes (the catalogue's cache is keyed by it)."""
    model = learned.embedder()
    return DIM + (model.dim if model is not None else 0)


def _l2_rows(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def describe_batch(small: np.ndarray, aspect: np.ndarray) -> np.ndarray:
    """Embeddings of crops already resized to SIZE x SIZE (uint8 [n, SIZE, SIZE, 3]) whose original
    width / height was ``aspect`` [n] -> float32 [n, DIM]."""
    n = len(small)
    px = small.astype(np.float32)
    px += 1.0
    total = px.sum(axis=-1)
    chans = np.empty((n, SIZE, SIZE, 3), np.float32)
    np.divide(px[..., 2], total, out=chans[..., 0])  # chromaticity r, g: exposure leaves them alone
    np.divide(px[..., 1], total, out=chans[..., 1])
    np.multiply(total, np.float32(1 / 3), out=chans[..., 2])  # intensity
    # cell means of all three at once: INTER_AREA on the crops stacked into one tall image (SIZE/GRID is
    # whole, so no cell straddles two crops)
    cells = cv2.resize(chans.reshape(n * SIZE, SIZE, 3), (GRID, n * GRID), interpolation=cv2.INTER_AREA)
    cells = cells.reshape(n, GRID * GRID, 3)
    mean_i = np.maximum(cells[:, :, 2].mean(axis=1, keepdims=True), 1.0)
    cells[:, :, 2] *= 0.35 / mean_i  # intensity relative to the crop's, scaled into chromaticity's range
    layout = cells.reshape(n, -1) - np.tile(np.array([1 / 3, 1 / 3, 0.35], np.float32), GRID * GRID)
    # chromaticity histogram, Hellinger-normalised (big uniform areas do not swamp the rest)
    scale = np.float32(HIST_BINS / 0.75)
    rb = np.minimum((chans[..., 0] * scale).astype(np.int32), HIST_BINS - 1)
    gb = np.minimum((chans[..., 1] * scale).astype(np.int32), HIST_BINS - 1)
    flat = (rb * HIST_BINS + gb).reshape(n, -1) + (np.arange(n, dtype=np.int32) * HIST_BINS * HIST_BINS)[
        :, None
    ]
    hist = np.sqrt(
        np.bincount(flat.ravel(), minlength=n * HIST_BINS * HIST_BINS).reshape(n, -1).astype(np.float32)
    )
    hog = _hog(chans[..., 2])
    # the pack's proportions, soft-binned (a 330 ml and a 500 ml can of one design differ mostly here)
    la = np.log(np.maximum(np.asarray(aspect, np.float32), 1e-3))[:, None]
    shape = np.exp(-0.5 * ((la - ASPECT_BINS[None]) / ASPECT_SIGMA) ** 2)
    parts = [
        WEIGHTS["layout"] * _l2_rows(layout),
        WEIGHTS["hist"] * _l2_rows(hist),
        WEIGHTS["hog"] * _l2_rows(hog),
        WEIGHTS["aspect"] * _l2_rows(shape),
    ]
    return _l2_rows(np.concatenate(parts, axis=1)).astype(np.float32)


def _hog(grey: np.ndarray) -> np.ndarray:
    """Dalal-Triggs HOG of float images [n, SIZE, SIZE] (OpenCV 5 dropped cv2.HOGDescriptor)."""
    n = len(grey)
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    np.subtract(grey[:, :, 2:], grey[:, :, :-2], out=gx[:, :, 1:-1])
    np.subtract(grey[:, 2:, :], grey[:, :-2, :], out=gy[:, 1:-1, :])
    mag = np.sqrt(gx * gx + gy * gy)
    ang = np.arctan2(gy, gx)
    ang = np.where(ang < 0, ang + np.float32(np.pi), ang) * np.float32(ORIENT / np.pi)  # unsigned, in bins
    lo = ang.astype(np.int64)  # trunc == floor for ang >= 0 (int64 and float64: what bincount takes)
    frac = ang - lo
    lo[lo == ORIENT] = 0
    hi = lo + 1
    hi[hi == ORIENT] = 0
    cell = np.arange(SIZE, dtype=np.int64) // CELL
    cell_idx = (cell[:, None] * _NC + cell[None, :])[None] * ORIENT + (
        np.arange(n, dtype=np.int64) * (_NC * _NC * ORIENT)
    )[:, None, None]
    size = n * _NC * _NC * ORIENT
    both = np.empty((2, n, SIZE, SIZE), np.int64)
    np.add(cell_idx, lo, out=both[0])
    np.add(cell_idx, hi, out=both[1])
    weights = np.empty((2, n, SIZE, SIZE), np.float64)
    np.multiply(mag, 1 - frac, out=weights[0])
    np.subtract(mag, weights[0], out=weights[1])
    hist = np.bincount(both.reshape(-1), weights.reshape(-1), size)
    hist = hist.astype(np.float32).reshape(n, _NC, _NC, ORIENT)
    blocks = np.concatenate([hist[:, :-1, :-1], hist[:, :-1, 1:], hist[:, 1:, :-1], hist[:, 1:, 1:]], axis=-1)
    blocks = blocks.reshape(n, (_NC - 1) ** 2, 4 * ORIENT)
    blocks = blocks / (np.linalg.norm(blocks, axis=-1, keepdims=True) + 1e-3)
    np.minimum(blocks, 0.2, out=blocks)  # L2-Hys
    blocks = blocks / (np.linalg.norm(blocks, axis=-1, keepdims=True) + 1e-3)
    return blocks.reshape(n, -1)


def embed(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(embeddings float32 [n, DIM], usable bool [n]) for the boxes (xyxy pixels) in a BGR image; a box
    too small to describe gets a zero row and ``usable`` False."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    patches = [crop(image, box) for box in boxes]
    ok = np.array([p is not None for p in patches], bool)
    out = np.zeros((len(boxes), dim()), np.float32)
    if ok.any():
        out[ok] = _describe([p for p in patches if p is not None])
    return out, ok


def reference_views(image: np.ndarray) -> np.ndarray:
    """Embeddings of a reference image as a shelf camera could see it: as given, a little tighter and
    looser (a detector's box is never exact), and softened (a pack 60 px tall on a 720p shelf photo).
    float32 [views, DIM]. A store's single pack shot then matches crops from shelf photos far better."""
    h, w = image.shape[:2]
    views = [image]
    for dx, dy in ((0.05, 0.04), (-0.03, -0.03)):
        a, b = int(round(w * max(dx, 0))), int(round(h * max(dy, 0)))
        if dx >= 0:
            views.append(image[b : h - b, a : w - a])
        else:
            pad = (int(round(h * -dy)), int(round(w * -dx)))
            views.append(cv2.copyMakeBorder(image, pad[0], pad[0], pad[1], pad[1], cv2.BORDER_REPLICATE))
    small_h = 60
    if h > small_h:
        s = small_h / h
        shrunk = cv2.resize(image, (max(4, int(w * s)), small_h), interpolation=cv2.INTER_AREA)
        views.append(cv2.GaussianBlur(shrunk, (0, 0), 0.8))
    return _describe([v for v in views if v.shape[0] >= 4 and v.shape[1] >= 4])
