"""Retail shelf photos: products (one class per SKU) standing in facing runs, price tags on shelf edges.

See docs/datasets.md for the classes, truth fields and the rules (facings, outOfStock, complianceScore,
shelfPosition).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import cv2
import numpy as np

from . import common as C

DOMAIN = "shelves"
PRICE_TAG = "price-tag"
SPRITE_PX_PER_MM = 2.0


@dataclass(frozen=True)
class SKU:
    name: str  # class name == objectName, e.g. "Fizzo Cola 330ml"
    brand: str  # big text on the pack
    variant: str  # small text on the pack
    size: str  # printed size text
    shape: str  # can | bottle | carton | box | pouch | jar
    w_mm: float
    h_mm: float
    bg: str  # packaging colours, RGB hex
    accent: str
    ink: str
    pattern: str  # band | swoosh | badge | wave | split | stripes
    price: float
    tag_name: str  # short name printed on the price tag
    vertical: bool = False  # brand printed vertically


# The fixed catalogue. Invented brands only. Some SKUs are deliberately alike (same brand in two sizes,
# same bottle with a different label colour, same carton in two colours).
CATALOGUE: tuple[SKU, ...] = (
    SKU(
        "Fizzo Cola 330ml",
        "FIZZO",
        "COLA",
        "330ml",
        "can",
        66,
        115,
        "#c8102e",
        "#ffffff",
        "#ffffff",
        "swoosh",
        0.89,
        "FIZZO COLA 330ML",
    ),
    SKU(
        "Fizzo Cola 500ml",
        "FIZZO",
        "COLA",
        "500ml",
        "can",
        66,
        168,
        "#c8102e",
        "#ffffff",
        "#ffffff",
        "swoosh",
        1.29,
        "FIZZO COLA 500ML",
    ),
    SKU(
        "Fizzo Zero 330ml",
        "FIZZO",
        "ZERO",
        "330ml",
        "can",
        66,
        115,
        "#151515",
        "#c8102e",
        "#ffffff",
        "swoosh",
        0.89,
        "FIZZO ZERO 330ML",
    ),
    SKU(
        "Fizzo Cola 1.5L",
        "FIZZO",
        "COLA",
        "1.5L",
        "bottle",
        92,
        310,
        "#c8102e",
        "#ffffff",
        "#ffffff",
        "swoosh",
        2.19,
        "FIZZO COLA 1.5L",
    ),
    SKU(
        "Brizzl Lemon 330ml",
        "BRIZZL",
        "lemon",
        "330ml",
        "can",
        66,
        115,
        "#f4e04d",
        "#2e8b3a",
        "#1d5e27",
        "wave",
        0.79,
        "BRIZZL LEMON 330ML",
        True,
    ),
    SKU(
        "Brizzl Lemon 500ml",
        "BRIZZL",
        "lemon",
        "500ml",
        "bottle",
        65,
        210,
        "#f4e04d",
        "#2e8b3a",
        "#1d5e27",
        "wave",
        1.19,
        "BRIZZL LEMON 500ML",
    ),
    SKU(
        "Zesto Orange 330ml",
        "ZESTO",
        "orange",
        "330ml",
        "can",
        66,
        115,
        "#ff7f11",
        "#ffe066",
        "#ffffff",
        "badge",
        0.85,
        "ZESTO ORANGE 330ML",
    ),
    SKU(
        "Zesto Orange 1L",
        "ZESTO",
        "orange",
        "1L",
        "bottle",
        80,
        270,
        "#ff7f11",
        "#ffe066",
        "#ffffff",
        "badge",
        1.79,
        "ZESTO ORANGE 1L",
    ),
    SKU(
        "Aquara Still 500ml",
        "AQUARA",
        "still",
        "500ml",
        "bottle",
        65,
        215,
        "#1f6fd1",
        "#bfe3ff",
        "#ffffff",
        "wave",
        0.59,
        "AQUARA STILL 500ML",
    ),
    SKU(
        "Aquara Sparkling 500ml",
        "AQUARA",
        "sparkling",
        "500ml",
        "bottle",
        65,
        215,
        "#1e9e6a",
        "#c9f2dd",
        "#ffffff",
        "wave",
        0.65,
        "AQUARA SPARKL 500ML",
    ),
    SKU(
        "Koffi Latte 250ml",
        "KOFFI",
        "latte",
        "250ml",
        "can",
        53,
        134,
        "#6b4226",
        "#f1e3c8",
        "#f1e3c8",
        "band",
        1.49,
        "KOFFI LATTE 250ML",
        True,
    ),
    SKU(
        "Voltra Energy 250ml",
        "VOLTRA",
        "energy",
        "250ml",
        "can",
        53,
        134,
        "#0d1b4c",
        "#39ff14",
        "#39ff14",
        "stripes",
        1.39,
        "VOLTRA ENERGY 250ML",
        True,
    ),
    SKU(
        "Voltra Energy 500ml",
        "VOLTRA",
        "energy",
        "500ml",
        "can",
        66,
        168,
        "#0d1b4c",
        "#39ff14",
        "#39ff14",
        "stripes",
        1.99,
        "VOLTRA ENERGY 500ML",
        True,
    ),
    SKU(
        "Nordmilk Whole 1L",
        "NORDMILK",
        "whole",
        "1L",
        "carton",
        70,
        240,
        "#f7f7f2",
        "#1c4fa1",
        "#1c4fa1",
        "split",
        1.09,
        "NORDMILK WHOLE 1L",
    ),
    SKU(
        "Nordmilk Semi 1L",
        "NORDMILK",
        "semi",
        "1L",
        "carton",
        70,
        240,
        "#f7f7f2",
        "#2f9e44",
        "#2f9e44",
        "split",
        1.05,
        "NORDMILK SEMI 1L",
    ),
    SKU(
        "Sunvale Juice 1L",
        "SUNVALE",
        "orange juice",
        "1L",
        "carton",
        70,
        240,
        "#ffb703",
        "#fb5607",
        "#7a2e00",
        "badge",
        2.29,
        "SUNVALE JUICE 1L",
    ),
    SKU(
        "Crunchos Salted 150g",
        "CRUNCHOS",
        "salted",
        "150g",
        "pouch",
        165,
        235,
        "#ffd60a",
        "#003f88",
        "#003f88",
        "badge",
        1.69,
        "CRUNCHOS SALTED 150G",
    ),
    SKU(
        "Crunchos Paprika 150g",
        "CRUNCHOS",
        "paprika",
        "150g",
        "pouch",
        165,
        235,
        "#d62828",
        "#003f88",
        "#ffd60a",
        "badge",
        1.69,
        "CRUNCHOS PAPRIKA 150G",
    ),
    SKU(
        "Goldgrain Muesli 500g",
        "GOLDGRAIN",
        "muesli",
        "500g",
        "box",
        150,
        235,
        "#e9c46a",
        "#6a4c93",
        "#3d2b56",
        "band",
        3.49,
        "GOLDGRAIN MUESLI 500G",
    ),
    SKU(
        "Goldgrain Flakes 375g",
        "GOLDGRAIN",
        "corn flakes",
        "375g",
        "box",
        150,
        235,
        "#f77f00",
        "#ffffff",
        "#5a2a00",
        "band",
        2.79,
        "GOLDGRAIN FLAKES 375G",
    ),
    SKU(
        "Teaberry Green Tea 20pk",
        "TEABERRY",
        "green tea",
        "20 bags",
        "box",
        135,
        78,
        "#2a9d8f",
        "#e9f5db",
        "#ffffff",
        "split",
        2.15,
        "TEABERRY GREEN 20PK",
    ),
    SKU(
        "Rossano Passata 500g",
        "ROSSANO",
        "passata",
        "500g",
        "jar",
        75,
        150,
        "#b5171c",
        "#2d6a4f",
        "#ffffff",
        "band",
        1.35,
        "ROSSANO PASSATA 500G",
    ),
    SKU(
        "Mielo Honey 350g",
        "MIELO",
        "honey",
        "350g",
        "jar",
        82,
        112,
        "#d98e04",
        "#3a2106",
        "#3a2106",
        "badge",
        4.25,
        "MIELO HONEY 350G",
    ),
    SKU(
        "Pastaro Spaghetti 500g",
        "PASTARO",
        "spaghetti",
        "500g",
        "box",
        72,
        265,
        "#1d3557",
        "#f1faee",
        "#f1faee",
        "stripes",
        1.19,
        "PASTARO SPAGH 500G",
        True,
    ),
)

NAMES: tuple[str, ...] = tuple(s.name for s in CATALOGUE) + (PRICE_TAG,)
TAG_CLASS = len(CATALOGUE)


def bgr(hex_rgb: str) -> tuple[float, float, float]:
    h = hex_rgb.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return (float(b), float(g), float(r))


def shelf_position(row: int, rows: int) -> str:
    """Documented mapping from row index (0 = top) and row count to the seed's ``shelfPosition``."""
    if rows <= 1:
        return "eye-level"
    if row == rows - 1:
        return "bottom"
    if rows == 2:
        return "eye-level"
    if row == 0:
        return "top"
    if row == 1:
        return "eye-level"
    return "middle"


# ------------------------------------------------------------------------------------ pack sprites
def _silhouette(shape: str, w: int, h: int) -> np.ndarray:
    """Outline polygon of a pack (front view) in sprite pixels."""
    if shape == "can":
        t, b = 0.055 * h, 0.035 * h
        return np.array(
            [
                [0.08 * w, 0],
                [0.92 * w, 0],
                [w, t],
                [w, h - b],
                [0.94 * w, h],
                [0.06 * w, h],
                [0, h - b],
                [0, t],
            ]
        )
    if shape == "bottle":
        ys = np.linspace(0, h, 60)

        def half(y):
            f = y / h
            if f < 0.075:
                return 0.2
            if f < 0.09:
                return 0.23
            if f < 0.2:
                return 0.17 + 0.02 * (f - 0.09) / 0.11
            if f < 0.36:
                u = (f - 0.2) / 0.16
                return 0.19 + 0.31 * math.sin(u * math.pi / 2)
            if f < 0.97:
                return 0.5 - (0.02 if 0.55 < f < 0.6 else 0.0)
            return 0.5 - 0.03 * (f - 0.97) / 0.03

        right = [[w / 2 + half(y) * w, y] for y in ys]
        left = [[w / 2 - half(y) * w, y] for y in ys[::-1]]
        return np.array(right + left)
    if shape == "carton":
        fin = 0.04 * h
        return np.array(
            [
                [0.03 * w, 0],
                [0.97 * w, 0],
                [0.97 * w, fin],
                [w, fin + 0.01 * h],
                [w, h],
                [0, h],
                [0, fin + 0.01 * h],
                [0.03 * w, fin],
            ]
        )
    if shape == "pouch":
        pts = []
        n = 14
        for i in range(n + 1):
            pts.append([0.05 * w + i * 0.9 * w / n, (0.0 if i % 2 == 0 else 0.025 * h)])
        for k in range(1, 20):
            y = 0.03 * h + k * 0.94 * h / 20
            pts.append([w - 0.05 * w * (1 - math.sin(math.pi * (y / h))), y])
        for i in range(n, -1, -1):
            pts.append([0.05 * w + i * 0.9 * w / n, h - (0.0 if i % 2 == 0 else 0.025 * h)])
        for k in range(19, 0, -1):
            y = 0.03 * h + k * 0.94 * h / 20
            pts.append([0.05 * w * (1 - math.sin(math.pi * (y / h))), y])
        return np.array(pts)
    if shape == "jar":
        lid = 0.16 * h
        return np.array(
            [
                [0.1 * w, 0],
                [0.9 * w, 0],
                [0.9 * w, lid],
                [0.97 * w, lid + 0.05 * h],
                [w, lid + 0.12 * h],
                [w, h - 0.04 * h],
                [0.96 * w, h],
                [0.04 * w, h],
                [0, h - 0.04 * h],
                [0, lid + 0.12 * h],
                [0.03 * w, lid + 0.05 * h],
                [0.1 * w, lid],
            ]
        )
    return np.array([[0, 0], [w, 0], [w, h], [0, h]])  # box


def _design(img: np.ndarray, sku: SKU, x1: int, y1: int, x2: int, y2: int) -> None:
    """Paint the label artwork (background, pattern, brand, variant, size) into a rectangle."""
    bg, ac, ink = bgr(sku.bg), bgr(sku.accent), bgr(sku.ink)
    w, h = x2 - x1, y2 - y1
    img[y1:y2, x1:x2] = bg
    sub = img[y1:y2, x1:x2]
    p = sku.pattern
    if p == "swoosh":
        xs = np.linspace(0, w, 30)
        top = h * 0.58 + np.sin(xs / w * math.pi * 1.2) * h * 0.08
        poly = np.concatenate([np.stack([xs, top], 1), np.stack([xs[::-1], top[::-1] + h * 0.05], 1)])
        cv2.fillPoly(sub, [poly.astype(np.int32)], ac, cv2.LINE_AA)
    elif p == "wave":
        xs = np.linspace(0, w, 40)
        top = h * 0.7 + np.sin(xs / w * math.pi * 3) * h * 0.03
        poly = np.concatenate([np.stack([xs, top], 1), [[w, h], [0, h]]])
        cv2.fillPoly(sub, [poly.astype(np.int32)], ac, cv2.LINE_AA)
    elif p == "badge":
        cv2.circle(sub, (int(w * 0.5), int(h * 0.62)), int(min(w, h) * 0.28), ac, -1, cv2.LINE_AA)
    elif p == "band":
        cv2.rectangle(sub, (0, int(h * 0.12)), (w, int(h * 0.34)), ac, -1)
        cv2.rectangle(sub, (0, int(h * 0.86)), (w, int(h * 0.9)), ac, -1)
    elif p == "split":
        cv2.rectangle(sub, (0, int(h * 0.55)), (w, h), ac, -1)
    elif p == "stripes":
        for k in range(-2, 8):
            x0 = int(k * w * 0.22)
            cv2.fillPoly(
                sub,
                [
                    np.array(
                        [
                            [x0, h],
                            [x0 + int(w * 0.07), h],
                            [x0 + int(w * 0.5), int(h * 0.45)],
                            [x0 + int(w * 0.43), int(h * 0.45)],
                        ],
                        np.int32,
                    )
                ],
                ac,
                cv2.LINE_AA,
            )
    # texts
    if sku.vertical and h > 1.6 * w:
        tw, th = int(h * 0.62), int(w * 0.5)
        t = np.zeros((th, tw, 3), np.uint8)
        t[:] = (0, 0, 0)
        C.put_text_fit(t, sku.brand, (2, 0, tw - 2, th), (255, 255, 255), 900)
        t = cv2.rotate(t, cv2.ROTATE_90_COUNTERCLOCKWISE)
        m = t[..., :1].astype(np.float32) / 255.0
        ox, oy = int(w * 0.08), int(h * 0.06)
        region = sub[oy : oy + t.shape[0], ox : ox + t.shape[1]]
        region[:] = (
            region * (1 - m[: region.shape[0], : region.shape[1]])
            + np.float32(ink) * m[: region.shape[0], : region.shape[1]]
        )
        C.put_text_fit(sub, sku.variant.upper(), (w * 0.62, h * 0.2, w * 0.98, h * 0.3), ink, 600)
        C.put_text_fit(sub, sku.size, (w * 0.6, h * 0.84, w * 0.97, h * 0.95), ink, 700)
    else:
        bh = min(h * 0.2, w * 0.45)
        by = h * 0.36 if p != "band" else h * 0.14
        C.put_text_fit(sub, sku.brand, (w * 0.06, by, w * 0.94, by + bh), ink if p != "band" else bg, 900)
        C.put_text_fit(
            sub, sku.variant, (w * 0.15, by + bh * 1.1, w * 0.85, by + bh * 1.6), ink, 600, face="italic"
        )
        C.put_text_fit(
            sub, sku.size, (w * 0.25, h * 0.78, w * 0.75, h * 0.92), ink if p != "split" else bg, 700
        )


def _hprofile(w: int, lo: float, hi_pos: float) -> np.ndarray:
    """Cylindrical shading across the width: dark at the edges, a highlight at ``hi_pos``."""
    x = (np.arange(w, dtype=np.float32) + 0.5) / w
    base = lo + (1 - lo) * np.sqrt(np.clip(1 - (2 * x - 1) ** 2, 0, 1))
    spec = 0.35 * np.exp(-(((x - hi_pos) / 0.05) ** 2))
    return (base + spec).astype(np.float32)


@cache
def sprite(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(BGR float32, alpha float32 (h, w, 1), hull points in sprite pixels) for catalogue SKU ``index``."""
    return render_sku(CATALOGUE[index])


def render_sku(sku: SKU) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sprite`` for any SKU description (the catalogue's, or one made up for training)."""
    w = int(round(sku.w_mm * SPRITE_PX_PER_MM))
    h = int(round(sku.h_mm * SPRITE_PX_PER_MM))
    img = np.zeros((h, w, 3), np.uint8)
    sil = _silhouette(sku.shape, w, h)
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(sil * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    silver = (190, 192, 196)
    shade = np.ones((h, w), np.float32)
    if sku.shape == "can":
        t, b = int(0.07 * h), int(0.955 * h)
        _design(img, sku, 0, t, w, b)
        img[:t] = silver
        img[b:] = silver
        cv2.line(img, (0, t), (w, t), (120, 120, 125), max(1, h // 120))
        shade *= _hprofile(w, 0.45, 0.3)[None, :]
    elif sku.shape == "bottle":
        liquid = tuple(c * 0.55 for c in bgr(sku.bg)) if sku.bg != "#1f6fd1" else (235, 215, 190)
        img[:] = liquid
        cap_h = int(0.075 * h)
        img[:cap_h] = bgr(sku.accent) if sku.accent != "#ffffff" else (40, 40, 170)
        ly1, ly2 = int(0.42 * h), int(0.8 * h)
        _design(img, sku, 0, ly1, w, ly2)
        shade *= _hprofile(w, 0.55, 0.28)[None, :]
        shade[:ly1] *= 0.95
    elif sku.shape == "carton":
        fin = int(0.05 * h)
        gable = int(0.16 * h)
        _design(img, sku, 0, gable, w, h)
        img[:gable] = tuple(c * 0.85 for c in bgr(sku.bg))
        img[:fin] = tuple(c * 0.75 for c in bgr(sku.bg))
        C.put_text_fit(img, sku.brand, (w * 0.1, fin + 2, w * 0.9, gable - 2), bgr(sku.accent), 800)
        cv2.line(img, (0, gable), (w, gable), tuple(c * 0.6 for c in bgr(sku.bg)), max(1, h // 150))
        shade *= np.linspace(0.9, 1.05, w, dtype=np.float32)[None, :]
    elif sku.shape == "pouch":
        _design(img, sku, 0, 0, w, h)
        ys = (np.arange(h, dtype=np.float32) + 0.5) / h
        shade *= (0.8 + 0.3 * np.sin(ys * math.pi))[:, None] * _hprofile(w, 0.75, 0.35)[None, :]
    elif sku.shape == "jar":
        lid = int(0.16 * h)
        glass = tuple(c * 0.5 for c in bgr(sku.bg))
        img[:] = glass
        _design(img, sku, 0, int(0.38 * h), w, int(0.86 * h))
        img[:lid] = (40, 150, 200) if sku.bg == "#d98e04" else (60, 60, 60)
        for k in range(1, 6):
            cv2.line(img, (0, k * lid // 6), (w, k * lid // 6), (30, 30, 30), 1)
        shade *= _hprofile(w, 0.55, 0.3)[None, :]
    else:  # box, with a narrow darker side panel
        side = int(0.11 * w)
        _design(img, sku, 0, 0, w - side, h)
        img[:, w - side :] = tuple(c * 0.7 for c in bgr(sku.bg))
        cv2.line(img, (w - side, 0), (w - side, h), (40, 40, 40), 1)
    out = img.astype(np.float32) * shade[..., None]
    # edge darkening along the outline
    edge = cv2.GaussianBlur(mask, (0, 0), max(1.0, w / 60)).astype(np.float32) / 255.0
    out *= (0.75 + 0.25 * edge)[..., None]
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    return np.clip(out, 0, 255), alpha, C.mask_hull(mask)


@lru_cache(maxsize=64)
def _sprite_hull_unit(index: int) -> np.ndarray:
    """Hull of the sprite in unit coordinates (0..1 across width and height)."""
    img, _, hull = sprite(index)
    h, w = img.shape[:2]
    return hull / np.float64([w, h])


@cache
def _pyramid(index: int) -> tuple[np.ndarray, ...]:
    """The sprite as BGRA float32 at full, 1/2, 1/4 ... size (resizing from the nearest level is cheap)."""
    img, alpha, _ = sprite(index)
    level = np.concatenate([img, alpha], axis=2)
    levels = [level]
    while min(level.shape[:2]) > 24:
        level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)
        levels.append(level)
    return tuple(levels)


def _pyramid_level(index: int, w: int, h: int) -> np.ndarray:
    best = _pyramid(index)[0]
    for lv in _pyramid(index):
        if lv.shape[1] >= w and lv.shape[0] >= h:
            best = lv
    return best


# -------------------------------------------------------------------------------------- price tags
TAG_STYLES = (
    ((255, 255, 255), (20, 20, 20), (20, 20, 20)),  # white, black text
    ((80, 230, 255), (20, 20, 20), (0, 0, 180)),  # yellow promo, red price
    ((250, 250, 250), (150, 60, 0), (150, 60, 0)),  # white, blue text
    ((230, 240, 235), (30, 30, 30), (30, 30, 30)),
)
TAG_BASE_H = 60


@lru_cache(maxsize=4096)
def tag_image(name: str, price: str, style: int) -> np.ndarray:
    """A price tag rendered at a canonical 60 px height (float32 BGR), resized per image."""
    bg, ink, pink = TAG_STYLES[style]
    h = TAG_BASE_H
    w = int(h * 2.3)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = bg
    C.put_text_fit(img, name, (4, 2, w - 4, 15), ink, 600, align="left")
    C.put_text_fit(img, price, (4, 17, w - 4, h - 4), pink, 900, align="right")
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), tuple(c * 0.8 for c in bg), 1)
    return img.astype(np.float32)


def _price_str(v: float) -> str:
    return f"{v:.2f}"


# ------------------------------------------------------------------------------------------ stock
@dataclass(frozen=True)
class Stock:
    """What a bay is stocked with: the packs (``SKU`` sizes, brand, price, tag text), how each is drawn
    (``level(i, w, h)``: BGRA float32 at least w x h; ``hull(i)``: outline in unit coordinates) and the
    class id each is labelled with. The default is the demo catalogue; ``shelves_wide`` makes up new ones."""

    items: Sequence[SKU]
    level: Callable[[int, int, int], np.ndarray]
    hull: Callable[[int], np.ndarray]
    class_ids: Sequence[int]


@dataclass(frozen=True)
class Look:
    """Optional departures from the demo look (used by ``shelves_wide``; None keeps the demo's draws)."""

    board: tuple[float, float, float] | None = None  # shelf-edge colour
    panel: tuple[float, float, float] | None = None  # back-panel colour
    tag: Callable[[str, str, int], np.ndarray] | None = None  # (tag text, price, style) -> float32 BGR
    homography: float = 0.0  # perspective strength (0: the demo's mild one, half the time)


def demo_stock() -> Stock:
    return Stock(CATALOGUE, _pyramid_level, _sprite_hull_unit, tuple(range(len(CATALOGUE))))


# ------------------------------------------------------------------------------------------ scene
@dataclass
class Run:
    run_id: int
    sku: int
    row: int
    planned: int
    visible: int
    x0: float  # slot left edge (canvas px)
    x1: float
    first: int  # index of the first visible slot


def _background_small(rng, sw, sh):
    """The back panel at 1/4 size (shaded later, then upsampled once): (BGR float32, kind, base colour)."""
    kind = int(rng.integers(0, 4))
    if kind == 0:  # light back panel
        base = C.jitter_color(rng, (215, 218, 220), 20)
    elif kind == 1:  # dark grey
        base = C.jitter_color(rng, (75, 78, 82), 15)
    elif kind == 2:  # pegboard-ish beige
        base = C.jitter_color(rng, (170, 190, 205), 15)
    else:
        base = C.jitter_color(rng, (160, 160, 160), 30)
    n = C.smooth_noise(rng, sh, sw, 6, 3)
    img = (1.0 + 0.06 * n)[..., None] * np.asarray(base, np.float32)[None, None, :]
    return img.astype(np.float32), kind, base


def _pegboard(rng, img, base) -> None:
    h, w = img.shape[:2]
    step = int(rng.integers(14, 24))
    col = tuple(c * 0.45 for c in base)
    for y in range(step // 2, h, step):
        for x in range(step // 2, w, step):
            cv2.circle(img, (x, y), 2, col, -1, cv2.LINE_AA)


def generate(
    rng: np.random.Generator,
    width: int = 1280,
    height: int = 720,
    stock: Stock | None = None,
    look: Look | None = None,
):
    """One shelf image → (float32 image before finish, boxes, truth)."""
    stock = stock or demo_stock()
    look = look or Look()
    CAT = stock.items
    W, H = width, height
    sh_h, sh_w = H // 4 + 1, W // 4 + 1
    bg_small, bg_kind, bg_base = _background_small(rng, sh_w, sh_h)
    if look.panel is not None:
        bg_small *= np.float32(look.panel) / np.maximum(np.float32(bg_base), 1.0)
        bg_base = look.panel

    n_rows = int(rng.choice([3, 4, 5, 6], p=[0.3, 0.35, 0.2, 0.15]))
    clear_mm = rng.uniform(170, 330, n_rows)
    # make sure at least one row holds the tall products now and then
    if rng.random() < 0.35:
        clear_mm[int(rng.integers(0, n_rows))] = rng.uniform(320, 360)
    lip_mm = rng.uniform(32, 44)
    tm = rng.uniform(0.02, 0.1) * H
    bm = rng.uniform(0.02, 0.08) * H
    s = (H - tm - bm) / float(np.sum(clear_mm + lip_mm))  # px per mm
    lip = lip_mm * s
    margin_x = rng.uniform(0.035, 0.06) * W
    post_w = rng.uniform(18, 35) * s
    inner_x0, inner_x1 = margin_x + post_w, W - margin_x - post_w

    board_kind = int(rng.integers(0, 4))  # 0 white channel, 1 metal, 2 wood, 3 black
    board_base = [(235, 235, 232), (165, 168, 172), (70, 120, 170), (40, 40, 42)][board_kind]
    board_base = C.jitter_color(rng, board_base, 12)
    if look.board is not None:
        board_base = look.board

    # row geometry
    rows = []
    y = tm
    for r in range(n_rows):
        top = y
        board = top + clear_mm[r] * s
        rows.append(
            {"row": r, "top": top, "board": board, "lip_bottom": board + lip, "clear_mm": float(clear_mm[r])}
        )
        y = board + lip

    # back-of-shelf darkening in every row (depth); applied together with product shadows below
    vprof = np.ones(H, np.float32)
    depth = rng.uniform(0.55, 0.85)
    for rw in rows:
        a, b = int(rw["top"]), int(rw["board"])
        n = max(1, b - a)
        t = np.linspace(0, 1, n, dtype=np.float32)
        vprof[a:b] = depth + (1 - depth) * 0.5 * t + 0.1 * (1 - np.exp(-t * 4))
    # top-of-row shadow cast by the board above (applied to products as they are drawn)
    vprof2 = np.ones(H + 1, np.float32)
    for rw in rows:
        a = int(rw["top"])
        n = int(min(rw["board"] - rw["top"], 60 * s + 10))
        vprof2[a : a + n] = np.linspace(rng.uniform(0.55, 0.8), 1.0, n, dtype=np.float32) ** 0.7

    # products
    n_sku = len(CAT)
    target_runs = int(rng.integers(16, 31))
    runs_per_row = np.full(n_rows, target_runs // n_rows)
    runs_per_row[: target_runs % n_rows] += 1
    rng.shuffle(runs_per_row)
    usable = inner_x1 - inner_x0
    used_skus: set[int] = set()
    all_runs: list[Run] = []
    products = []  # (sku, row, run_id, pts)
    tags = []
    draw_items = []  # deferred draws (sku, x, y, w, h, brightness)
    for rw in rows:
        r = rw["row"]
        fits = [i for i in range(n_sku) if CAT[i].h_mm <= rw["clear_mm"] - 8]
        fresh = [i for i in fits if i not in used_skus]
        rng.shuffle(fresh)
        others = [i for i in fits if i in used_skus]
        rng.shuffle(others)
        cand = fresh + others
        m = int(min(runs_per_row[r], len(cand)))
        chosen = cand[:m]
        # brand blocks: often keep a brand together (planograms do), which also puts look-alikes side by side
        if rng.random() < 0.6:
            chosen.sort(key=lambda i: (CAT[i].brand, CAT[i].h_mm))
        gap_f = rng.uniform(0.5, 3.0)  # px between facings
        gap_r = rng.uniform(4, 14)  # px between runs
        widths = [CAT[i].w_mm * s for i in chosen]
        while chosen and sum(widths) + gap_r * (len(chosen) - 1) > usable:
            k = int(np.argmax(widths))
            chosen.pop(k)
            widths.pop(k)
        facings = [1] * len(chosen)

        def total(facings=facings, widths=widths, gap_f=gap_f, gap_r=gap_r):
            return sum(f * (wd + gap_f) for f, wd in zip(facings, widths, strict=True)) + gap_r * (
                len(widths) - 1
            )

        max_f = int(rng.integers(4, 9))
        grow = True
        while grow:
            grow = False
            order = rng.permutation(len(chosen))
            for k in order:
                if facings[k] < max_f and total() + widths[k] + gap_f <= usable:
                    facings[k] += 1
                    grow = True
        slack = usable - total()
        x = inner_x0 + rng.uniform(0, max(0.0, slack) * 0.4)
        extra_gap = max(0.0, slack) * rng.uniform(0.0, 0.6) / max(1, len(chosen))
        for k, sk in enumerate(chosen):
            used_skus.add(sk)
            f = facings[k]
            wd = widths[k]
            slot_w = f * (wd + gap_f)
            u = rng.random()
            if u < 0.08:
                vis = 0
            elif u < 0.28 and f >= 2:
                vis = int(max(1, f - rng.integers(1, min(f, 3) + 1)))
            else:
                vis = f
            first = int(rng.integers(0, f - vis + 1))
            run = Run(len(all_runs), sk, r, f, vis, x, x + slot_w, first)
            all_runs.append(run)
            ph = CAT[sk].h_mm * s
            for j in range(first, first + vis):
                px = x + j * (wd + gap_f) + rng.uniform(-0.4, 0.4) * gap_f
                py = rw["board"] - ph + rng.uniform(0, 1.5) * s * 2
                draw_items.append((sk, px, py, wd, ph, rng.uniform(0.88, 1.06), r, run.run_id))
            x += slot_w + gap_r + extra_gap

    # product shadows on the back panel, times the depth profile: one full-size multiply
    shadow = np.ones((sh_h, sh_w), np.float32)
    for _sk, px, py, wd, ph, *_ in draw_items:
        cv2.rectangle(
            shadow,
            (int((px + 2) / 4), int((py + 0.15 * ph) / 4)),
            (int((px + wd + 4) / 4), int((py + ph) / 4)),
            0.6,
            -1,
        )
    shadow = cv2.GaussianBlur(shadow, (0, 0), 2.0)
    shadow *= cv2.resize(vprof[:, None], (1, sh_h), interpolation=cv2.INTER_AREA)
    bg_small *= shadow[..., None]
    canvas = cv2.resize(bg_small, (W, H), interpolation=cv2.INTER_LINEAR)
    if bg_kind == 2:
        _pegboard(rng, canvas, bg_base)

    # draw products: one resize (and one premultiplied sprite) per run
    cache: dict[int, tuple] = {}
    for sk, px, py, wd, ph, bright, r, run_id in draw_items:
        iw, ih = max(2, int(round(wd))), max(2, int(round(ph)))
        xi, yi = int(round(px)), int(round(py))
        if run_id not in cache:
            rgba = cv2.resize(stock.level(sk, iw, ih), (iw, ih), interpolation=cv2.INTER_AREA)
            y0c, y1c = max(0, yi), max(0, min(H, yi + ih))
            light = np.ones(ih, np.float32)
            light[y0c - yi : y1c - yi] = vprof2[y0c:y1c]
            a3 = np.repeat(rgba[..., 3:], 3, axis=2)
            pre = rgba[..., :3] * a3 * (light[:, None, None] * np.float32(bright))
            cache[run_id] = (np.ascontiguousarray(pre), 1.0 - a3)
        pre, inv = cache[run_id]
        C.blend_premultiplied(canvas, pre, inv, xi, yi)
        hull = stock.hull(sk) * np.float64([iw, ih]) + np.float64([xi, yi])
        products.append((sk, r, run_id, hull))

    # shelf boards (lips), uprights, top header and floor
    for rw in rows:
        a, b = int(round(rw["board"])), int(round(rw["lip_bottom"]))
        x_a, x_b = int(margin_x), int(W - margin_x)
        if board_kind == 2:
            tex = C.wood_texture(rng, b - a, x_b - x_a, board_base)
        else:
            tex = C.brushed_metal(rng, b - a, x_b - x_a, board_base)
        grad = np.linspace(1.12, 0.85, b - a, dtype=np.float32)[:, None, None]
        canvas[a:b, x_a:x_b] = tex * grad
        canvas[a : a + max(1, int(lip * 0.08)), x_a:x_b] *= 1.15
        sh = int(max(3, lip * 0.5))
        if b + sh < H:
            canvas[b : b + sh, x_a:x_b] *= np.linspace(0.45, 1.0, sh, dtype=np.float32)[:, None, None]
    post_col = C.jitter_color(rng, (120, 122, 126) if board_kind != 2 else (60, 90, 120), 15)
    for x_a in (margin_x, W - margin_x - post_w):
        xa, xb = int(x_a), int(x_a + post_w)
        canvas[:, xa:xb] = (
            C.brushed_metal(rng, H, xb - xa, post_col)
            * np.linspace(0.8, 1.1, xb - xa, dtype=np.float32)[None, :, None]
        )
        for yy in range(0, H, max(6, int(20 * s))):
            cv2.rectangle(
                canvas,
                (xa + (xb - xa) // 3, yy),
                (xa + 2 * (xb - xa) // 3, yy + max(2, int(8 * s))),
                (25, 25, 25),
                -1,
            )
    # outside the bay: neighbouring wall / next bay, darker
    side_col = C.jitter_color(rng, (95, 100, 105), 30)
    canvas[:, : int(margin_x)] = C.mottled(rng, H, int(margin_x), side_col, 0.1)
    canvas[:, int(W - margin_x) :] = C.mottled(rng, H, W - int(W - margin_x), side_col, 0.1)
    if tm > 6:
        canvas[: int(tm)] *= 0.7
    bottom = int(rows[-1]["lip_bottom"]) + 1
    if bottom < H:
        canvas[bottom:] = C.mottled(rng, H - bottom, W, C.jitter_color(rng, (60, 62, 66), 20), 0.08)

    # price tags on the lip under each planogram slot (also for out-of-stock slots)
    promo = rng.random() < 0.4
    tag_style = int(rng.integers(0, len(TAG_STYLES)))
    for run in all_runs:
        rw = rows[run.row]
        sku = CAT[run.sku]
        price = sku.price
        style = tag_style
        if promo and rng.random() < 0.25:
            price = round(max(0.19, price * rng.uniform(0.6, 0.9)), 2) - 0.0
            price = math.floor(price * 10) / 10 + 0.09
            style = 1
        elif rng.random() < 0.15:
            price = round(price + rng.choice([-0.1, 0.1, 0.2, 0.3]), 2)
        pstr = _price_str(price)
        th = lip * rng.uniform(0.72, 0.86)
        tw = th * 2.3
        tx = run.x0 + rng.uniform(0, max(0.0, min(run.x1 - run.x0 - tw, 6 * s)))
        ty = rw["board"] + (lip - th) / 2
        timg = (look.tag or tag_image)(sku.tag_name, pstr, style)
        iw, ih = max(4, int(round(tw))), max(3, int(round(th)))
        small = cv2.resize(timg, (iw, ih), interpolation=cv2.INTER_AREA)
        xi, yi = int(round(tx)), int(round(ty))
        canvas[yi : yi + ih, xi : xi + iw] = small
        tags.append({"run": run.run_id, "price": pstr, "pts": C.rect_pts(xi, yi, xi + iw, yi + ih)})

    # occluders: a shelf wobbler or a hanging promo card covering part of some products
    occluded = []
    if rng.random() < 0.3 and products:
        for _ in range(int(rng.integers(1, 3))):
            k = int(rng.integers(0, len(products)))
            hull = products[k][3]
            bx1, by1 = hull.min(0)
            bx2, by2 = hull.max(0)
            bw, bh = bx2 - bx1, by2 - by1
            cx = bx1 + rng.uniform(0.1, 0.9) * bw
            cy = by1 + rng.uniform(0.5, 0.85) * bh
            rad = max(4, int(min(bw, bh) * rng.uniform(0.2, 0.3)))
            col = C.jitter_color(
                rng, [(40, 40, 220), (30, 200, 250), (60, 160, 40)][int(rng.integers(0, 3))], 20
            )
            stick_bottom = int(rows[products[k][1]]["board"] + lip * 0.5)
            cv2.line(canvas, (int(cx), int(cy)), (int(cx), stick_bottom), (200, 200, 200), max(1, int(2 * s)))
            patch = np.zeros((2 * rad + 2, 2 * rad + 2, 3), np.uint8)
            pm = np.zeros(patch.shape[:2], np.uint8)
            cv2.circle(patch, (rad + 1, rad + 1), rad, col, -1, cv2.LINE_AA)
            cv2.circle(pm, (rad + 1, rad + 1), rad, 255, -1, cv2.LINE_AA)
            C.put_text_fit(patch, "NEW", (rad * 0.35, rad * 0.6, rad * 1.7, rad * 1.4), (255, 255, 255), 900)
            C.blend(
                canvas,
                patch.astype(np.float32),
                (pm.astype(np.float32) / 255.0)[..., None],
                int(cx) - rad - 1,
                int(cy) - rad - 1,
            )
            occluded.append(k)

    # camera: mild perspective
    Hm = C.random_homography(rng, W, H, 0.02) if rng.random() < 0.5 else None
    if look.homography > 0:
        Hm = C.random_homography(rng, W, H, look.homography)
    if Hm is not None:
        canvas = cv2.warpPerspective(
            canvas, Hm, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )

    # ---- truth
    all_xyxy = C.boxes_of([p[3] for p in products] + [t["pts"] for t in tags], Hm, W, H)
    boxes = []
    prod_truth = []
    for pid, (sk, r, run_id, _hull) in enumerate(products):
        xyxy = all_xyxy[pid]
        boxes.append((stock.class_ids[sk], xyxy))
        prod_truth.append(
            {
                "id": pid,
                "sku": CAT[sk].name,
                "classId": stock.class_ids[sk],
                "row": r,
                "runId": run_id,
                "xyxy": [C.r2(v) for v in xyxy],
                "boundingBox": C.box_dict(xyxy),
            }
        )
    tag_truth = []
    tag_by_run = {}
    for tid, t in enumerate(tags):
        xyxy = all_xyxy[len(products) + tid]
        boxes.append((TAG_CLASS, xyxy))
        run = all_runs[t["run"]]
        tag_by_run[run.run_id] = t["price"]
        tag_truth.append(
            {
                "id": tid,
                "price": t["price"],
                "sku": CAT[run.sku].name,
                "row": run.row,
                "runId": run.run_id,
                "xyxy": [C.r2(v) for v in xyxy],
                "boundingBox": C.box_dict(xyxy),
            }
        )

    positions = [shelf_position(r, n_rows) for r in range(n_rows)]
    run_truth = []
    members_of: dict[int, list[dict]] = {}
    for p in prod_truth:
        members_of.setdefault(p["runId"], []).append(p)
    for run in all_runs:
        members = members_of.get(run.run_id, [])
        ub = None
        if members:
            ub = [
                min(p["xyxy"][0] for p in members),
                min(p["xyxy"][1] for p in members),
                max(p["xyxy"][2] for p in members),
                max(p["xyxy"][3] for p in members),
            ]
        run_truth.append(
            {
                "runId": run.run_id,
                "sku": CAT[run.sku].name,
                "row": run.row,
                "shelfPosition": positions[run.row],
                "facings": run.visible,
                "plannedFacings": run.planned,
                "priceTag": tag_by_run.get(run.run_id),
                "xyxy": ub,
            }
        )
    for p in prod_truth:
        run = run_truth[p["runId"]]
        p["attributes"] = {
            "facings": run["facings"],
            "shelfPosition": run["shelfPosition"],
            "priceTag": run["priceTag"],
        }

    planogram = []
    for r in range(n_rows):
        items = [{"sku": CAT[run.sku].name, "facings": run.planned} for run in all_runs if run.row == r]
        planogram.append({"row": r, "shelfPosition": positions[r], "items": items})
    planned_total = sum(run.planned for run in all_runs)
    present = sum(min(run.visible, run.planned) for run in all_runs)
    visible_by_sku: dict[str, int] = {}
    for run in all_runs:
        nm = CAT[run.sku].name
        visible_by_sku[nm] = visible_by_sku.get(nm, 0) + run.visible
    out_of_stock = sorted(n for n, v in visible_by_sku.items() if v == 0)
    truth = {
        "domain": DOMAIN,
        "width": W,
        "height": H,
        "rowCount": n_rows,
        "rows": [
            {"row": rw["row"], "shelfPosition": positions[rw["row"]], "boardY": C.r2(rw["board"])}
            for rw in rows
        ],
        "products": prod_truth,
        "runs": run_truth,
        "tags": tag_truth,
        "planogram": planogram,
        "summary": {
            "totalProducts": len(prod_truth),
            "uniqueSKUs": len({p["sku"] for p in prod_truth}),
            "outOfStock": out_of_stock,
            "complianceScore": round(present / planned_total, 4) if planned_total else 1.0,
        },
        "occludedProducts": occluded,
        "pxPerMm": C.r2(s),
    }
    return canvas, boxes, truth


def make(rng: np.random.Generator, width: int, height: int):
    canvas, boxes, truth = generate(rng, width, height)
    img = C.photo_finish(canvas, rng)
    return C.Sample(img, C.jpeg_quality(rng), boxes, truth)
