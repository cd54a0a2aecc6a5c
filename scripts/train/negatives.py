"""Training negatives: images that contain none of a model's objects, written without label files (the
trainer treats an image without a label file as a negative, see ``train.data``).

Three sources, all local, nothing downloaded:

- **scikit-image's bundled photos** (``skimage.data``; the ones that fetch on demand are skipped offline),
  augmented: random crops at many scales, flips, colour/exposure, and tiled collages of several crops;
- **procedural scenes** drawn here (colour noise, gradients, text pages with random words in several
  OpenCV fonts, scattered shapes, stripes, blurred colour fields, scribbles), independent of the held-out
  generator in ``scripts/heldout`` (which training must never import);
- **the Grocery Store Dataset** (``--grocery-store DIR``, the checkout holding ``dataset/train/...``): the
  classes ``Fruit``, ``Vegetables``, ``Packages/Juice`` and ``Packages/Milk`` of the train split only — for
  the building and damage models only (in-store photos hold no facades and no damage; for the shelf model
  they would be products). Every other Packages class is held out and never read.

Photos shipped with other packages (scikit-learn, matplotlib, mahotas) are held out for evaluation and are
not used here.

    python scripts/train/negatives.py --out DIR --count 400 --seed 1 --domain damage --grocery-store /work/data/grocery
"""

from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

# skimage.data loaders bundled with the package (others fetch on demand: tried too, skipped when offline)
SKIMAGE_PHOTOS = [
    "astronaut", "brick", "camera", "cat", "cell", "checkerboard", "clock", "coffee", "coins", "colorwheel",
    "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "microaneurysms", "moon",
    "page", "retina", "rocket", "shepp_logan_phantom", "text", "binary_blobs", "eagle", "brain", "skin",
]  # fmt: skip
GROCERY_ALLOWED = ("Fruit", "Vegetables", "Packages/Juice", "Packages/Milk")
# which sources each domain may use (grocery photos are products: never negatives for the shelf model)
DOMAIN_MIX = {
    "shelves": {"photo": 0.55, "procedural": 0.45, "grocery": 0.0},
    "facades": {"photo": 0.35, "procedural": 0.35, "grocery": 0.30},
    "damage": {"photo": 0.35, "procedural": 0.35, "grocery": 0.30},
}
WORDS = (
    "the of and to in is for on with as by at from this that report quarterly sale total invoice lorem ipsum "
    "dolor amet data north south river table figure chapter page notes meeting agenda price open closed "
    "street hotel cafe menu coffee tea daily weekly summary results method analysis system version"
).split()
FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
)  # fmt: skip


def _to_bgr8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = a.astype(np.float32)
        lo, hi = float(a.min()), float(a.max())
        a = ((a - lo) / max(hi - lo, 1e-6) * 255).astype(np.uint8)
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    if a.shape[2] == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a[:, :, ::-1])


def skimage_photos() -> list[tuple[str, np.ndarray]]:
    """(name, BGR uint8) for each bundled ``skimage.data`` image that loads offline."""
    try:
        import skimage.data as skd
    except ImportError:
        log.warning("negatives: scikit-image is not installed, no photo negatives")
        return []
    out = []
    for name in SKIMAGE_PHOTOS:
        fn = getattr(skd, name, None)
        if fn is None:
            continue
        try:
            img = fn()
        except Exception as exc:  # pooch fetch offline, missing optional dependency
            log.info("negatives: skimage.data.%s unavailable (%s), skipped", name, type(exc).__name__)
            continue
        img = _to_bgr8(img)
        if min(img.shape[:2]) >= 64:
            out.append((name, img))
    return out


def grocery_paths(root: Path) -> list[Path]:
    """Train-split images of the allowed Grocery Store classes only."""
    base = Path(root) / "dataset" / "train"
    if not base.is_dir():
        raise FileNotFoundError(f"{root}: expected dataset/train/ (the Grocery Store Dataset checkout)")
    paths: list[Path] = []
    for cls in GROCERY_ALLOWED:
        paths += sorted(p for p in (base / cls).rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return paths


# ---------------------------------------------------------------------------------------------- augment
def random_crop(rng: random.Random, img: np.ndarray, min_frac: float = 0.15) -> np.ndarray:
    h, w = img.shape[:2]
    f = rng.uniform(min_frac, 1.0)
    ar = rng.uniform(0.6, 1.8)
    cw = int(min(w, max(16, w * f * ar**0.5)))
    ch = int(min(h, max(16, h * f / ar**0.5)))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img[y : y + ch, x : x + cw]


def colour(rng: random.Random, img: np.ndarray) -> np.ndarray:
    """Flips, exposure ×0.5–×1.6, gamma, per-channel gains, sometimes grey, blur or noise."""
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.15:
        img = img[::-1]
    x = img.astype(np.float32)
    x *= rng.uniform(0.5, 1.6)
    x *= np.array([rng.uniform(0.8, 1.2) for _ in range(3)], np.float32)
    x = np.clip(x, 0, 255)
    g = rng.uniform(0.7, 1.4)
    x = 255.0 * (x / 255.0) ** g
    if rng.random() < 0.1:
        x[:] = x.mean(2, keepdims=True)
    if rng.random() < 0.15:
        k = rng.choice((3, 5, 7))
        x = cv2.GaussianBlur(x, (k, k), 0)
    if rng.random() < 0.15:
        x += np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(3, 12), x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def fit(rng: random.Random, img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Fill a w×h canvas: stretch-free cover-crop most of the time, sometimes letterbox on a flat colour."""
    ih, iw = img.shape[:2]
    if rng.random() < 0.75:
        r = max(w / iw, h / ih)
        im = cv2.resize(img, (max(w, round(iw * r)), max(h, round(ih * r))), interpolation=cv2.INTER_LINEAR)
        y = rng.randint(0, im.shape[0] - h)
        x = rng.randint(0, im.shape[1] - w)
        return im[y : y + h, x : x + w].copy()
    r = min(w / iw, h / ih) * rng.uniform(0.5, 1.0)
    nw, nh = max(1, round(iw * r)), max(1, round(ih * r))
    out = np.full((h, w, 3), [rng.randint(0, 255) for _ in range(3)], np.uint8)
    x, y = rng.randint(0, w - nw), rng.randint(0, h - nh)
    out[y : y + nh, x : x + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return out


def collage(rng: random.Random, sources: list[np.ndarray], w: int, h: int) -> np.ndarray:
    """A grid (2×1 … 4×3) of random crops of random sources."""
    cols, rows = rng.choice(((2, 1), (2, 2), (3, 2), (4, 3), (1, 2)))
    out = np.zeros((h, w, 3), np.uint8)
    xs = np.linspace(0, w, cols + 1).astype(int)
    ys = np.linspace(0, h, rows + 1).astype(int)
    for i in range(cols):
        for j in range(rows):
            tw, th = xs[i + 1] - xs[i], ys[j + 1] - ys[j]
            tile = colour(rng, random_crop(rng, rng.choice(sources), 0.2))
            out[ys[j] : ys[j + 1], xs[i] : xs[i + 1]] = fit(rng, tile, tw, th)
    return out


def augmented_photo(rng: random.Random, sources: list[np.ndarray], w: int, h: int) -> np.ndarray:
    if rng.random() < 0.3:
        return collage(rng, sources, w, h)
    return fit(rng, colour(rng, random_crop(rng, rng.choice(sources))), w, h)


# ------------------------------------------------------------------------------------------- procedural
def _rand_colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))


def proc_noise(rng: random.Random, w: int, h: int) -> np.ndarray:
    g = np.random.default_rng(rng.randrange(1 << 30))
    acc = np.zeros((h, w, 3), np.float32)
    total = 0.0
    for cells in rng.sample((4, 12, 40, 160, 640), rng.randint(1, 4)):
        wt = rng.random() + 0.1
        small = g.random((max(2, cells * h // w), cells, 3 if rng.random() < 0.7 else 1)).astype(np.float32)
        up = cv2.resize(small, (w, h), interpolation=rng.choice((cv2.INTER_CUBIC, cv2.INTER_NEAREST)))
        acc += wt * (up if up.ndim == 3 else up[:, :, None])
        total += wt
    acc /= total
    lo, hi = rng.uniform(0, 100), rng.uniform(150, 255)
    return np.clip(lo + acc * (hi - lo), 0, 255).astype(np.uint8)


def proc_gradient(rng: random.Random, w: int, h: int) -> np.ndarray:
    a = np.array(_rand_colour(rng), np.float32)
    b = np.array(_rand_colour(rng), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.6:
        ang = rng.uniform(0, np.pi * 2)
        t = xx * np.cos(ang) + yy * np.sin(ang)
    else:
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.hypot(xx - cx, yy - cy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return (a + (b - a) * t[..., None]).astype(np.uint8)


def proc_text(rng: random.Random, w: int, h: int) -> np.ndarray:
    """A page of random words: paper or dark background, one to three columns, headings, several fonts."""
    dark = rng.random() < 0.25
    bg = rng.randint(0, 60) if dark else rng.randint(190, 255)
    img = np.full((h, w, 3), bg, np.uint8)
    img[:] = np.clip(img.astype(int) + [rng.randint(-15, 15) for _ in range(3)], 0, 255)
    ink = (rng.randint(200, 255),) * 3 if dark else (rng.randint(0, 70),) * 3
    if rng.random() < 0.3:
        ink = _rand_colour(rng)
    font = rng.choice(FONTS)
    ncol = rng.choice((1, 1, 2, 3))
    scale = rng.uniform(0.5, 2.2) * w / 1280
    thick = rng.choice((1, 1, 2, 3))
    colw = w // ncol
    for c in range(ncol):
        y = rng.randint(10, 60)
        while y < h - 5:
            s = scale * (rng.uniform(1.5, 2.5) if rng.random() < 0.08 else 1.0)
            x = c * colw + rng.randint(5, 30)
            line = ""
            while True:
                word = rng.choice(WORDS)
                if rng.random() < 0.1:
                    word = word.upper()
                if rng.random() < 0.08:
                    word = str(rng.randint(1, 9999))
                cand = (line + " " + word).strip()
                (tw, th), _ = cv2.getTextSize(cand, font, s, thick)
                if tw > colw - 40:
                    break
                line = cand
            (tw, th), _ = cv2.getTextSize(line or "a", font, s, thick)
            cv2.putText(img, line, (x, y + th), font, s, ink, thick, cv2.LINE_AA)
            y += int(th * rng.uniform(1.5, 2.4)) + 2
            if rng.random() < 0.05:
                y += th * 3
    return img


def proc_shapes(rng: random.Random, w: int, h: int) -> np.ndarray:
    img = proc_gradient(rng, w, h) if rng.random() < 0.5 else np.full((h, w, 3), _rand_colour(rng), np.uint8)
    for _ in range(rng.randint(5, 60)):
        c = _rand_colour(rng)
        t = rng.choice((-1, -1, 1, 2, 4))
        kind = rng.random()
        x, y = rng.randint(0, w), rng.randint(0, h)
        s = rng.randint(5, max(6, w // 5))
        if kind < 0.35:
            cv2.circle(img, (x, y), s // 2, c, t, cv2.LINE_AA)
        elif kind < 0.55:
            cv2.ellipse(
                img, (x, y), (s // 2, rng.randint(3, s)), rng.uniform(0, 180), 0, 360, c, t, cv2.LINE_AA
            )
        elif kind < 0.8:
            pts = np.array(
                [[x + rng.randint(-s, s), y + rng.randint(-s, s)] for _ in range(rng.randint(3, 7))]
            )
            if t < 0:
                cv2.fillPoly(img, [pts], c, cv2.LINE_AA)
            else:
                cv2.polylines(img, [pts], True, c, t, cv2.LINE_AA)
        else:
            cv2.line(
                img,
                (x, y),
                (x + rng.randint(-s, s), y + rng.randint(-s, s)),
                c,
                rng.randint(1, 6),
                cv2.LINE_AA,
            )
    return img


def proc_stripes(rng: random.Random, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ang = rng.choice((0.0, np.pi / 2, rng.uniform(0, np.pi)))
    period = rng.uniform(6, 160)
    t = (xx * np.cos(ang) + yy * np.sin(ang)) / period
    wave = np.sin(2 * np.pi * t) if rng.random() < 0.5 else (np.floor(t) % 2) * 2 - 1
    a, b = np.array(_rand_colour(rng), np.float32), np.array(_rand_colour(rng), np.float32)
    img = a + (b - a) * ((wave[..., None] + 1) / 2)
    if rng.random() < 0.3:  # a checker / plaid: a second set of stripes across
        t2 = (-xx * np.sin(ang) + yy * np.cos(ang)) / rng.uniform(6, 160)
        img = img * (0.75 + 0.25 * np.sin(2 * np.pi * t2)[..., None])
    return np.clip(img, 0, 255).astype(np.uint8)


def proc_blur_field(rng: random.Random, w: int, h: int) -> np.ndarray:
    img = np.full((h, w, 3), _rand_colour(rng), np.uint8)
    for _ in range(rng.randint(3, 25)):
        cv2.circle(
            img, (rng.randint(0, w), rng.randint(0, h)), rng.randint(w // 20, w // 3), _rand_colour(rng), -1
        )
    k = rng.randrange(31, 151, 2)
    return cv2.GaussianBlur(img, (k, k), 0)


def proc_scribble(rng: random.Random, w: int, h: int) -> np.ndarray:
    img = proc_noise(rng, w, h) if rng.random() < 0.5 else np.full((h, w, 3), _rand_colour(rng), np.uint8)
    for _ in range(rng.randint(3, 30)):
        n = rng.randint(3, 30)
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        pts = []
        for _ in range(n):
            x += rng.uniform(-60, 60)
            y += rng.uniform(-60, 60)
            pts.append((int(x), int(y)))
        cv2.polylines(img, [np.array(pts)], False, _rand_colour(rng), rng.randint(1, 8), cv2.LINE_AA)
    return img


PROCEDURAL = {
    "noise": proc_noise,
    "gradient": proc_gradient,
    "text": proc_text,
    "shapes": proc_shapes,
    "stripes": proc_stripes,
    "blur": proc_blur_field,
    "scribble": proc_scribble,
}


def procedural(rng: random.Random, w: int, h: int) -> tuple[str, np.ndarray]:
    kind = rng.choices(list(PROCEDURAL), weights=(2, 1, 3, 2, 2, 1, 1))[0]
    img = PROCEDURAL[kind](rng, w, h)
    if rng.random() < 0.5:
        img = colour(rng, img)
    return kind, img


# ------------------------------------------------------------------------------------------------ write
def write_negatives(
    out: Path,
    count: int,
    seed: int,
    domain: str,
    grocery: Path | None = None,
    size: tuple[int, int] = (1280, 720),
    prefix: str = "neg",
) -> dict[str, int]:
    """Write ``count`` negatives as ``out/images/{prefix}_{seed}_{i}.jpg`` (no label files); returns counts
    per source. Image i depends only on (seed, i, the installed scikit-image and the grocery folder)."""
    mix = dict(DOMAIN_MIX[domain])
    if grocery is None or mix["grocery"] == 0:
        mix["grocery"] = 0.0
        gpaths: list[Path] = []
    else:
        gpaths = grocery_paths(grocery)
    photos = [img for _, img in skimage_photos()]
    if not photos:
        mix["photo"] = 0.0
    img_dir = Path(out) / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    w, h = size
    counts: dict[str, int] = {}
    for i in range(count):
        rng = random.Random(f"{seed}:{i}:{domain}")
        src = rng.choices(list(mix), weights=list(mix.values()))[0]
        if src == "photo":
            img, kind = augmented_photo(rng, photos, w, h), "photo"
        elif src == "grocery":
            g = cv2.imread(str(rng.choice(gpaths)), cv2.IMREAD_COLOR)
            if rng.random() < 0.25:
                extra = [cv2.imread(str(rng.choice(gpaths)), cv2.IMREAD_COLOR) for _ in range(5)]
                img = collage(rng, [g, *[e for e in extra if e is not None]], w, h)
            else:
                img = fit(rng, colour(rng, random_crop(rng, g, 0.4)), w, h)
            kind = "grocery"
        else:
            kind, img = procedural(rng, w, h)
            kind = "procedural"
        counts[kind] = counts.get(kind, 0) + 1
        cv2.imwrite(
            str(img_dir / f"{prefix}_{seed}_{i:06d}.jpg"),
            img,
            [cv2.IMWRITE_JPEG_QUALITY, rng.randint(70, 95)],
        )
    return counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="training folder (negatives go to OUT/images)")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--domain", choices=sorted(DOMAIN_MIX), required=True)
    ap.add_argument("--grocery-store", type=Path, default=None, help="Grocery Store Dataset checkout")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--prefix", default="neg")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    w, h = (int(v) for v in a.size.split("x"))
    counts = write_negatives(a.out, a.count, a.seed, a.domain, a.grocery_store, (w, h), a.prefix)
    print(f"{a.out}: {sum(counts.values())} negatives {counts}")


if __name__ == "__main__":
    main()
