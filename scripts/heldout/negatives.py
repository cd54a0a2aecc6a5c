"""Images that contain none of the shipped models' objects: photos that PyPI packages ship inside their
wheels (loaded from the installed packages, never downloaded, never committed; scikit-image's photos are
kept for training) and procedural images (noise textures, colour gradients, text pages, stripes)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

# (package, path inside the installed package, name). Only photos with none of the models' objects:
# mahotas' DepartmentStore.jpg (a crowded drawing of a shop) and matplotlib's present-box icon are left out.
PHOTOS = [
    ("sklearn", "datasets/images/china.jpg", "sklearn-china"),
    ("sklearn", "datasets/images/flower.jpg", "sklearn-flower"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "matplotlib-grace-hopper"),
    ("mahotas", "demos/data/luispedro.jpg", "mahotas-luispedro"),
    ("mahotas", "demos/data/nuclear.png", "mahotas-nuclear"),
]

Negative = tuple[str, str, np.ndarray]  # (name, kind, BGR image)


def photo_negatives() -> list[Negative]:
    """The photos of ``PHOTOS`` whose package is installed (the others are logged and skipped)."""
    out = []
    for package, rel, name in PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            log.warning("negatives: %s is not installed, skipping %s", package, name)
            continue
        path = Path(next(iter(spec.submodule_search_locations))) / rel
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            log.warning("negatives: %s has no readable %s", package, rel)
            continue
        out.append((name, "photo", img))
    return out


def _noise(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Colour value noise summed over octaves (cloudy / grainy textures)."""
    acc = np.zeros((h, w, 3), np.float32)
    for octave, weight in ((8, 0.5), (32, 0.3), (128, 0.15), (512, 0.05)):
        small = rng.random((max(2, h * octave // w), octave, 3)).astype(np.float32)
        acc += weight * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = rng.uniform(0, 80), rng.uniform(170, 255)
    return np.clip(lo + acc * (hi - lo), 0, 255).astype(np.uint8)


def _gradient(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:
        ang = rng.uniform(0, np.pi)
        t = xx * np.cos(ang) + yy * np.sin(ang)
    else:
        t = np.hypot(xx - rng.uniform(0, w), yy - rng.uniform(0, h))
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    return (a + t[..., None] * (b - a)).astype(np.uint8)


WORDS = "the of and edge camera report invoice total page section results table model shelf date".split()


def _text_page(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    img = np.full((h, w, 3), rng.integers(225, 256), np.uint8)
    font = int(rng.choice([cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_DUPLEX]))
    scale = float(rng.uniform(0.5, 1.1))
    step = int(30 * scale) + 8
    for y in range(step + 20, h - 20, step):
        line = " ".join(rng.choice(WORDS, int(rng.integers(4, 14))))
        cv2.putText(img, line, (40, y), font, scale, (20, 20, 20), 1 + int(scale > 0.8), cv2.LINE_AA)
    return img


def _stripes(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    period = int(rng.integers(12, 80))
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:h, 0:w]
    on = ((xx + yy * rng.uniform(-1, 1)) // period) % 2 == 0
    return np.where(on[..., None], a, b).astype(np.uint8)


MAKERS = {"noise": _noise, "gradient": _gradient, "text": _text_page, "stripes": _stripes}


def procedural_negatives(
    per_kind: int = 3, seed: int = 0, size: tuple[int, int] = (1280, 720)
) -> list[Negative]:
    """``per_kind`` images of each of ``MAKERS``; image (kind, i) depends only on (seed, kind, i)."""
    out = []
    for k, (kind, make) in enumerate(MAKERS.items()):
        for i in range(per_kind):
            rng = np.random.default_rng([seed, k, i])
            out.append((f"procedural-{kind}-{i}", "procedural", make(rng, *size)))
    return out
