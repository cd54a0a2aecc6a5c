"""Retail shelves stocked with packs nobody designed for the demo: what a *product* is, whatever its artwork.

The bay, rows, facing runs, gaps, tags and truth come from ``shelves.generate``; this module makes up the
stock for each image (new brands, shapes, sizes and artwork) and departs from the demo's look (any shelf
and back-panel colour, more tag layouts, perspective up to ~15 % keystone, a closer camera, harsher light).
Made-up packs are labelled ``product`` (class 25, after the 24 demo SKUs and ``price-tag``); demo SKUs that
appear among them keep their own class, so one detector both names the demo catalogue and finds any pack.

Artwork kinds (one per pack): the demo's shaded renderer with random colours, patterns and words; flat
colour with a label band (no shading); a crop of a scikit-image photo (``skimage.data``, allowed for
training) under the brand; a gradient with a random logo (circles, stars, polygons, stripes); a real pack
shot cut out of its white background: the Grocery Store Dataset's iconic images of Packages/Juice and
Packages/Milk only (MIT; the held-out package classes are never read), when ``EDGECV_GROCERY_STORE``
names the data set's folder. Without it the other kinds share its weight, and the output depends on it.
"""

from __future__ import annotations

import math
import os
import string
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from . import common as C
from . import shelves as S

DOMAIN = "shelves"
PRODUCT = "product"
NAMES: tuple[str, ...] = S.NAMES + (PRODUCT,)
PRODUCT_CLASS = len(S.NAMES)
PX_PER_MM = 1.0  # made-up sprites: products are drawn at ~0.3-1 px/mm, so 1 px/mm is enough
ALLOWED_GROCERY = ("Juice", "Milk")  # issue #25: these package classes may be used for training

# (shape, w_mm range, h_mm range)
SHAPES = (
    ("can", (50, 90), (90, 170)),
    ("bottle", (55, 110), (170, 340)),
    ("carton", (60, 100), (150, 260)),
    ("box", (50, 220), (70, 300)),
    ("pouch", (90, 200), (120, 260)),
    ("jar", (60, 115), (75, 160)),
    ("multipack", (150, 280), (80, 200)),
    ("tube", (30, 55), (110, 210)),
)
PATTERNS = ("band", "swoosh", "badge", "wave", "split", "stripes")
ART = ("shaded", "flat", "photo", "logo", "real")
ART_P = (0.34, 0.18, 0.16, 0.16, 0.16)


# ------------------------------------------------------------------------------------------ sources
@cache
def _photos() -> tuple[np.ndarray, ...]:
    """scikit-image's bundled photos as BGR uint8 (those that load offline)."""
    try:
        import skimage.data as skd
    except ImportError:
        return ()
    out = []
    for name in (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "immunohistochemistry",
        "retina",
        "hubble_deep_field",
        "colorwheel",
        "logo",
        "motorcycle_left",
        "brick",
        "grass",
        "gravel",
        "camera",
        "text",
        "page",
    ):
        try:
            a = np.asarray(getattr(skd, name)())
        except Exception:  # noqa: BLE001 - loaders that fetch on demand fail offline
            continue
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=2)
        a = a[..., :3]
        if a.dtype != np.uint8:
            a = (255 * (a.astype(np.float32) / max(1e-6, float(a.max())))).astype(np.uint8)
        out.append(np.ascontiguousarray(a[..., ::-1]))
    return tuple(out)


@cache
def _real_packs() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """(BGR float32, alpha float32) cut-outs of the allowed Grocery Store iconic pack shots."""
    root = os.environ.get("EDGECV_GROCERY_STORE")
    if not root:
        return ()
    base = Path(root) / "dataset" / "iconic-images-and-descriptions" / "Packages"
    out = []
    for cls in ALLOWED_GROCERY:
        for f in sorted((base / cls).glob("*/*_Iconic.jpg")):
            img = cv2.imread(str(f))
            if img is None:
                continue
            fg = (img.astype(np.int16).min(axis=2) < 235).astype(np.uint8)
            fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
            n, lab, stats, _ = cv2.connectedComponentsWithStats(fg)
            if n < 2:
                continue
            k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            x, y, w, h = stats[k, :4]
            mask = (lab == k).astype(np.uint8)
            # fill holes (white print inside the pack stays part of it)
            cnts, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            full = np.zeros_like(mask)
            cv2.drawContours(full, cnts, -1, 1, -1)
            crop = img[y : y + h, x : x + w].astype(np.float32)
            alpha = cv2.GaussianBlur(full[y : y + h, x : x + w].astype(np.float32), (3, 3), 0)[..., None]
            out.append((crop, alpha))
    return tuple(out)


# ------------------------------------------------------------------------------------------ packs
def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A packaging colour: saturated, pastel, dark or near-white (HSV drawn, BGR out)."""
    kind = rng.random()
    h = int(rng.integers(0, 180))
    if kind < 0.45:
        s, v = rng.integers(150, 256), rng.integers(120, 256)
    elif kind < 0.65:
        s, v = rng.integers(30, 120), rng.integers(190, 256)
    elif kind < 0.85:
        s, v = rng.integers(0, 256), rng.integers(20, 90)
    else:
        s, v = rng.integers(0, 30), rng.integers(215, 256)
    hsv = np.uint8([[[h, s, v]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _hex(bgr) -> str:
    b, g, r = bgr
    return f"#{r:02x}{g:02x}{b:02x}"


def _word(rng: np.random.Generator, lo: int, hi: int) -> str:
    letters = string.ascii_uppercase if rng.random() < 0.7 else string.ascii_letters
    return "".join(rng.choice(list(letters), int(rng.integers(lo, hi + 1))))


def random_sku(rng: np.random.Generator, brand: str | None = None) -> S.SKU:
    shape, (wl, wh), (hl, hh) = SHAPES[int(rng.integers(0, len(SHAPES)))]
    bg, accent = _colour(rng), _colour(rng)
    ink = (20, 20, 20) if sum(bg) > 450 else (245, 245, 245)
    if rng.random() < 0.3:
        ink = _colour(rng)
    size = rng.choice(
        ["250ml", "330ml", "500ml", "1L", "1.5L", "150g", "400g", "1kg", "6x330ml", "75cl", "200g"]
    )
    return S.SKU(
        name=PRODUCT,
        brand=brand or _word(rng, 3, 9),
        variant=_word(rng, 3, 10).lower().capitalize() if rng.random() < 0.8 else "",
        size=str(size),
        shape=shape,
        w_mm=float(rng.uniform(wl, wh)),
        h_mm=float(rng.uniform(hl, hh)),
        bg=_hex(bg),
        accent=_hex(accent),
        ink=_hex(ink),
        pattern=PATTERNS[int(rng.integers(0, len(PATTERNS)))],
        price=float(np.round(rng.uniform(0.39, 14.99), 2)),
        tag_name=(_word(rng, 4, 8) + " " + str(size)).upper(),
        vertical=bool(rng.random() < 0.15),
    )


def _mask_of(shape: str, w: int, h: int) -> np.ndarray:
    sil = S._silhouette(shape if shape in ("can", "bottle", "carton", "pouch", "jar") else "box", w, h)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(sil * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    return mask


def _texts(rng, img, sku: S.SKU, ink) -> None:
    h, w = img.shape[:2]
    face = ["sans", "serif", "italic"][int(rng.integers(0, 3))] if rng.random() < 0.6 else "sans"
    y = rng.uniform(0.15, 0.55) * h
    bh = min(h * rng.uniform(0.1, 0.22), w * 0.45)
    try:
        C.put_text_fit(
            img, sku.brand, (w * 0.06, y, w * 0.94, y + bh), ink, int(rng.choice([500, 700, 900])), face
        )
        if sku.variant and rng.random() < 0.8:
            C.put_text_fit(img, sku.variant, (w * 0.15, y + bh * 1.1, w * 0.85, y + bh * 1.6), ink, 600, face)
        if rng.random() < 0.7:
            C.put_text_fit(img, sku.size, (w * 0.25, h * 0.8, w * 0.75, h * 0.93), ink, 700)
    except cv2.error:
        pass


def _logo(rng, img) -> None:
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        col = _colour(rng)
        cx, cy = int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.1, 0.9) * h)
        r = int(max(3, rng.uniform(0.1, 0.45) * min(w, h)))
        k = rng.random()
        if k < 0.3:
            cv2.circle(img, (cx, cy), r, col, -1 if rng.random() < 0.7 else max(1, r // 5), cv2.LINE_AA)
        elif k < 0.55:
            n = int(rng.integers(5, 9))
            pts = [
                (
                    cx + (r if i % 2 == 0 else r * 0.45) * math.cos(math.pi * i / n),
                    cy + (r if i % 2 == 0 else r * 0.45) * math.sin(math.pi * i / n),
                )
                for i in range(2 * n)
            ]
            cv2.fillPoly(img, [np.int32(pts)], col, cv2.LINE_AA)
        elif k < 0.8:
            pts = rng.uniform(-r, r, (int(rng.integers(3, 7)), 2)) + (cx, cy)
            cv2.fillPoly(img, [np.int32(pts)], col, cv2.LINE_AA)
        else:
            for j in range(int(rng.integers(2, 6))):
                y0 = int(cy - r + j * 2 * r / 5)
                cv2.rectangle(img, (0, y0), (w, y0 + max(1, r // 6)), col, -1)


def _gradient(rng, h: int, w: int) -> np.ndarray:
    a, b = np.float32(_colour(rng)), np.float32(_colour(rng))
    ang = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = math.cos(ang) * xx / max(w, 1) + math.sin(ang) * yy / max(h, 1)
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    return (a * (1 - t[..., None]) + b * t[..., None]).astype(np.uint8)


def render(rng: np.random.Generator, sku: S.SKU, art: str) -> tuple[np.ndarray, np.ndarray]:
    """(BGR float32, alpha float32 (h, w, 1)) of a made-up pack at ``PX_PER_MM``."""
    if art == "real":
        packs = _real_packs()
        crop, alpha = packs[int(rng.integers(0, len(packs)))]
        return crop.copy(), alpha.copy()
    w = max(8, int(round(sku.w_mm * PX_PER_MM)))
    h = max(8, int(round(sku.h_mm * PX_PER_MM)))
    if art == "shaded":
        small = S.SKU(**{**sku.__dict__, "w_mm": w / S.SPRITE_PX_PER_MM, "h_mm": h / S.SPRITE_PX_PER_MM})
        img, alpha, _ = S.render_sku(small)
        return img, alpha
    mask = _mask_of(sku.shape, w, h)
    ink = S.bgr(sku.ink)
    if art == "flat":
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = S.bgr(sku.bg)
        y1 = int(h * rng.uniform(0.2, 0.6))
        cv2.rectangle(img, (0, y1), (w, y1 + max(3, int(h * rng.uniform(0.1, 0.3)))), S.bgr(sku.accent), -1)
        if rng.random() < 0.8:
            _texts(rng, img, sku, ink)
    elif art == "photo" and _photos():
        photos = _photos()
        src = photos[int(rng.integers(0, len(photos)))]
        sh, sw = src.shape[:2]
        f = rng.uniform(0.2, 1.0)
        cw, ch = max(8, int(sw * f)), max(8, int(sh * f))
        x0, y0 = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - ch + 1))
        img = cv2.resize(src[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_AREA)
        if rng.random() < 0.6:
            y1 = int(h * rng.uniform(0.05, 0.5))
            cv2.rectangle(img, (0, y1), (w, y1 + int(h * 0.2)), S.bgr(sku.bg), -1)
            _texts(rng, img, sku, ink)
    else:  # logo (also "photo" when no photos load)
        img = _gradient(rng, h, w) if rng.random() < 0.6 else np.full((h, w, 3), S.bgr(sku.bg), np.uint8)
        _logo(rng, img)
        _texts(rng, img, sku, ink)
    if sku.shape == "multipack":  # several units side by side under a wrap
        n = int(rng.integers(2, 5))
        unit = cv2.resize(img, (max(4, w // n), h), interpolation=cv2.INTER_AREA)
        img = cv2.resize(np.concatenate([unit] * n, axis=1), (w, h), interpolation=cv2.INTER_NEAREST)
        for k in range(1, n):
            cv2.line(img, (k * w // n, 0), (k * w // n, h), (30, 30, 30), 1)
    out = img.astype(np.float32)
    if rng.random() < 0.5:  # some shading across the width
        x = (np.arange(w, dtype=np.float32) + 0.5) / w
        lo = rng.uniform(0.6, 0.95)
        out *= (lo + (1 - lo) * np.sqrt(np.clip(1 - (2 * x - 1) ** 2, 0, 1)))[None, :, None]
    return out, (mask.astype(np.float32) / 255.0)[..., None]


def _hull_unit(alpha: np.ndarray) -> np.ndarray:
    m = (alpha[..., 0] > 0.5).astype(np.uint8) * 255
    h, w = m.shape
    return C.mask_hull(m) / np.float64([w, h])


# ------------------------------------------------------------------------------------------ tags
def make_tag_renderer(rng: np.random.Generator):
    """A tag look for one image: colours, layout, barcode, currency; (text, price, style) -> float32 BGR."""
    palettes = [
        ((255, 255, 255), (20, 20, 20), (20, 20, 20)),
        ((60, 220, 255), (20, 20, 20), (0, 0, 200)),
        ((40, 40, 210), (255, 255, 255), (255, 255, 255)),
        ((60, 170, 60), (255, 255, 255), (255, 255, 255)),
        ((200, 120, 40), (255, 255, 255), (255, 255, 255)),
        ((235, 235, 235), (120, 40, 0), (0, 0, 0)),
    ]
    pal = palettes[int(rng.integers(0, len(palettes)))]
    promo = palettes[int(rng.integers(0, len(palettes)))]
    layout = int(rng.integers(0, 4))
    barcode = rng.random() < 0.5
    cur = str(rng.choice(["", "", "$", "€", "£", "kr"]))
    seed = int(rng.integers(0, 2**31))

    def tag(name: str, price: str, style: int) -> np.ndarray:
        bg, ink, pink = promo if style == 1 else pal
        h = S.TAG_BASE_H
        w = int(h * 2.3)
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = bg
        p = price if not cur else (f"{cur}{price}" if cur in "$€£" else f"{price} {cur}")
        r = np.random.default_rng(seed + len(name))
        if layout == 0:
            C.put_text_fit(img, name, (4, 2, w - 4, 15), ink, 600, align="left")
            C.put_text_fit(img, p, (4, 17, w - 4, h - 4), pink, 900, align="right")
        elif layout == 1:
            C.put_text_fit(img, p, (4, 2, w * 0.6, h * 0.7), pink, 900, align="left")
            C.put_text_fit(img, name, (4, h * 0.72, w - 4, h - 3), ink, 500, align="left")
        elif layout == 2:
            cv2.rectangle(img, (0, 0), (w, int(h * 0.3)), tuple(int(c * 0.6) for c in bg), -1)
            C.put_text_fit(img, name, (4, 1, w - 4, h * 0.28), (255, 255, 255), 600)
            C.put_text_fit(img, p, (4, h * 0.34, w - 4, h - 3), pink, 900)
        else:
            C.put_text_fit(img, p, (w * 0.35, 3, w - 4, h * 0.75), pink, 900, align="right")
            C.put_text_fit(img, name, (4, h * 0.78, w - 4, h - 2), ink, 500)
        if barcode:
            x = 3
            bx2 = int(w * 0.3) if layout == 3 else int(w * 0.35)
            while x < bx2:
                bw = int(r.integers(1, 3))
                if r.random() < 0.6:
                    cv2.rectangle(img, (x, int(h * 0.45)), (x + bw - 1, h - 4), ink, -1)
                x += bw
        cv2.rectangle(img, (0, 0), (w - 1, h - 1), tuple(c * 0.8 for c in bg), 1)
        return img.astype(np.float32)

    return tag


# ------------------------------------------------------------------------------------------ image
def make_stock(rng: np.random.Generator) -> S.Stock:
    n = int(rng.integers(14, 36))
    arts = list(ART) if _real_packs() else list(ART[:-1])
    p = np.float64(ART_P[: len(arts)])
    p /= p.sum()
    items, levels, hulls, classes = [], [], [], []
    brands = [_word(rng, 3, 9) for _ in range(max(2, n // 3))]  # look-alike families share a brand
    for _ in range(n):
        sku = random_sku(rng, brands[int(rng.integers(0, len(brands)))] if rng.random() < 0.5 else None)
        art = arts[int(rng.choice(len(arts), p=p))]
        img, alpha = render(rng, sku, art)
        if art == "real":  # a real pack keeps its proportions
            hh, ww = img.shape[:2]
            h_mm = float(rng.uniform(150, 280))
            sku = S.SKU(**{**sku.__dict__, "h_mm": h_mm, "w_mm": h_mm * ww / hh})
        items.append(sku)
        levels.append(np.concatenate([img, alpha], axis=2))
        hulls.append(_hull_unit(alpha))
        classes.append(PRODUCT_CLASS)
    if rng.random() < 0.35:  # some demo SKUs among them, named as before
        for i in rng.choice(len(S.CATALOGUE), int(rng.integers(3, 10)), replace=False).tolist():
            items.append(S.CATALOGUE[i])
            levels.append(None)
            hulls.append(S._sprite_hull_unit(i))
            classes.append(i)
    demo_of = {k: S.CATALOGUE.index(items[k]) for k in range(len(items)) if levels[k] is None}

    def level(k: int, w: int, h: int) -> np.ndarray:
        if k in demo_of:
            return S._pyramid_level(demo_of[k], w, h)
        return levels[k]

    return S.Stock(tuple(items), level, lambda k: hulls[k], tuple(classes))


def _zoom(rng, img: np.ndarray, boxes: list, z: float):
    """A closer camera: crop 1/z of the frame and scale it back; keep boxes at least half inside."""
    H, W = img.shape[:2]
    cw, ch = W / z, H / z
    x0, y0 = rng.uniform(0, W - cw), rng.uniform(0, H - ch)
    M = np.float32([[z, 0, -x0 * z], [0, z, -y0 * z]])
    out = cv2.warpAffine(img, M, (W, H), flags=cv2.INTER_LINEAR)
    kept = []
    for cls, (x1, y1, x2, y2) in boxes:
        a = [(x1 - x0) * z, (y1 - y0) * z, (x2 - x0) * z, (y2 - y0) * z]
        c = [min(max(a[0], 0), W), min(max(a[1], 0), H), min(max(a[2], 0), W), min(max(a[3], 0), H)]
        full = (a[2] - a[0]) * (a[3] - a[1])
        vis = max(0.0, c[2] - c[0]) * max(0.0, c[3] - c[1])
        if full > 0 and vis / full >= 0.5:
            kept.append((cls, tuple(float(v) for v in c)))
    return out, kept


def make(rng: np.random.Generator, width: int, height: int):
    stock = make_stock(rng)
    look = S.Look(
        board=tuple(float(c) for c in _colour(rng)) if rng.random() < 0.6 else None,
        panel=tuple(float(c) for c in _colour(rng)) if rng.random() < 0.5 else None,
        tag=make_tag_renderer(rng) if rng.random() < 0.75 else None,
        homography=float(rng.uniform(0.02, 0.075)) if rng.random() < 0.7 else 0.0,
    )
    canvas, boxes, truth = S.generate(rng, width, height, stock=stock, look=look)
    # light: exposure x0.5-x1.6, a colour temperature, harsher glare now and then
    style = C.PhotoStyle(
        gain_range=(0.5, 1.6),
        cast=0.18,
        glare_prob=0.7,
        blur_prob=0.5,
        motion_blur_prob=0.15,
        noise_sigma=(1.0, 12.0),
    )
    img = C.photo_finish(canvas, rng, style)
    if rng.random() < 0.35:
        img, boxes = _zoom(rng, img, boxes, float(rng.uniform(1.2, 1.9)))
        truth = {"domain": DOMAIN, "width": width, "height": height, "zoomed": True}
    truth["style"] = "wide"
    return C.Sample(img, C.jpeg_quality(rng), boxes, truth)
