"""Unseen SKUs for judging catalogue recognition, drawn apart from ``scripts/datagen`` (none of its drawing
code is imported) and from the shipped demo catalogue: procedurally designed packs (cartons, bottles,
cans, bags, tubs) with their own artwork (stripes, chevrons, logos, gradients, a brand word in a Hershey
font), a quarter of them look-alike variants of another SKU (same design, another colour or size), put
on shelves under varied camera and light (exposure, colour cast, perspective, blur, noise, JPEG).

    design(seed) -> Design             # SKU ``seed``'s look, fixed by the seed alone
    pack_shot(design) -> BGR image     # the front on white, as a store's reference photo would be
    shelf(rng, designs) -> (image, boxes [n, 4], sku_index [n])

Used by scripts/eval_catalog.py; not used for training or tuning anything.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

KINDS = ("carton", "bottle", "can", "bag", "tub")
PATTERNS = ("stripes", "chevron", "circle", "star", "gradient", "checker", "wave", "split")
FONTS = (
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_SIMPLEX,
)
LETTERS = "ABDEFGHKLMNOPRSTUVWYZ"


@dataclass(frozen=True)
class Design:
    kind: str
    aspect: float  # width / height
    base: tuple[int, int, int]
    second: tuple[int, int, int]
    ink: tuple[int, int, int]
    pattern: str
    word: str
    font: int
    band: float  # where the label band sits, share of the height


def _hsv(rng) -> tuple[int, int, int]:
    h, s, v = rng.uniform(0, 180), rng.uniform(60, 255), rng.uniform(70, 255)
    px = cv2.cvtColor(np.uint8([[[h, s, v]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return tuple(int(c) for c in px)


def design(seed: int) -> Design:
    """SKU ``seed``: a quarter of seeds are a look-alike of seed - 1 (other colour, or other size)."""
    rng = np.random.default_rng([seed, 71])
    if seed % 4 == 3:
        parent = design(seed - 1)
        if rng.random() < 0.5:
            return replace(parent, second=_hsv(rng))
        return replace(parent, aspect=parent.aspect * rng.choice([0.7, 1.35]), base=_hsv(rng))
    kind = KINDS[rng.integers(len(KINDS))]
    aspect = {
        "carton": (0.45, 0.6),
        "bottle": (0.28, 0.38),
        "can": (0.5, 0.6),
        "bag": (0.65, 0.85),
        "tub": (1.0, 1.4),
    }[kind]
    return Design(
        kind=kind,
        aspect=float(rng.uniform(*aspect)),
        base=_hsv(rng),
        second=_hsv(rng),
        ink=(245, 245, 245) if rng.random() < 0.5 else (20, 20, 30),
        pattern=PATTERNS[rng.integers(len(PATTERNS))],
        word="".join(rng.choice(list(LETTERS), int(rng.integers(3, 6)))),
        font=FONTS[rng.integers(len(FONTS))],
        band=float(rng.uniform(0.35, 0.6)),
    )


def _artwork(d: Design, w: int, h: int) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = d.base
    if d.pattern == "stripes":
        for y in range(0, h, max(4, h // 9)):
            cv2.rectangle(img, (0, y), (w, y + max(2, h // 30)), d.second, -1)
    elif d.pattern == "chevron":
        for k in range(-2, 6):
            y = k * h // 5
            pts = np.int32(
                [
                    [0, y],
                    [w // 2, y + h // 8],
                    [w, y],
                    [w, y + h // 16],
                    [w // 2, y + h // 8 + h // 16],
                    [0, y + h // 16],
                ]
            )
            cv2.fillPoly(img, [pts], d.second)
    elif d.pattern == "circle":
        cv2.circle(img, (w // 2, int(h * 0.28)), int(min(w, h) * 0.3), d.second, -1)
    elif d.pattern == "star":
        c, r = (w // 2, int(h * 0.25)), min(w, h) * 0.3
        pts = [
            (
                c[0] + (r if k % 2 == 0 else r / 2.5) * np.sin(k * np.pi / 5),
                c[1] - (r if k % 2 == 0 else r / 2.5) * np.cos(k * np.pi / 5),
            )
            for k in range(10)
        ]
        cv2.fillPoly(img, [np.int32(pts)], d.second)
    elif d.pattern == "gradient":
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img[:] = (np.float32(d.base) * (1 - t) + np.float32(d.second) * t).astype(np.uint8)
    elif d.pattern == "checker":
        s = max(4, w // 6)
        for y in range(0, int(h * 0.3), s):
            for x in range((y // s % 2) * s, w, 2 * s):
                cv2.rectangle(img, (x, y), (x + s - 1, y + s - 1), d.second, -1)
    elif d.pattern == "wave":
        xs = np.arange(w)
        for k in range(3):
            ys = (h * (0.2 + 0.25 * k) + np.sin(xs / w * 2 * np.pi + k) * h * 0.05).astype(np.int32)
            cv2.polylines(img, [np.stack([xs, ys], 1).astype(np.int32)], False, d.second, max(2, h // 25))
    else:  # split
        cv2.fillPoly(img, [np.int32([[0, 0], [w, 0], [0, h]])], d.second)
    by = int(h * d.band)
    bh = max(6, h // 6)
    cv2.rectangle(img, (0, by), (w, by + bh), tuple(int(c * 0.35 + 160) for c in d.second), -1)
    scale = cv2.getFontScaleFromHeight(d.font, int(bh * 0.6), 2)
    (tw, _), _ = cv2.getTextSize(d.word, d.font, scale, 2)
    scale *= min(1.0, 0.9 * w / max(tw, 1))
    (tw, th), _ = cv2.getTextSize(d.word, d.font, scale, 2)
    cv2.putText(img, d.word, ((w - tw) // 2, by + (bh + th) // 2), d.font, scale, d.ink, 2, cv2.LINE_AA)
    return img


def render(d: Design, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(BGR front view, alpha mask uint8) of the pack at ``height`` px."""
    h = max(8, int(height))
    w = max(6, int(round(h * d.aspect)))
    img = _artwork(d, w, h)
    mask = np.full((h, w), 255, np.uint8)
    if d.kind == "bottle":
        neck = int(h * 0.3)
        mask[:neck] = 0
        nw = max(2, w // 3)
        mask[:neck, (w - nw) // 2 : (w + nw) // 2] = 255
        img[: max(2, h // 14), (w - nw) // 2 : (w + nw) // 2] = d.ink
    elif d.kind == "can":
        e = max(2, h // 14)
        img[:e] = (185, 185, 190)
        img[h - e :] = (160, 160, 165)
    elif d.kind == "bag":
        top = max(2, h // 12)
        img[:top] = tuple(int(c * 0.7) for c in d.base)
        for x in range(0, w, 4):
            img[:top, x] = (230, 230, 230)
    elif d.kind == "tub":
        mask[:] = 0
        cv2.fillPoly(
            mask, [np.int32([[0, 0], [w - 1, 0], [int(w * 0.88), h - 1], [int(w * 0.12), h - 1]])], 255
        )
    shade = np.linspace(0.8, 1.05, w, dtype=np.float32)
    shade = np.minimum(shade, shade[::-1] + 0.25)[None, :, None]
    img = np.clip(img.astype(np.float32) * shade, 0, 255).astype(np.uint8)
    return img, mask


def pack_shot(d: Design, height: int = 240) -> np.ndarray:
    """The front on a white background with a margin, as a reference photo of the product."""
    img, mask = render(d, height)
    h, w = mask.shape
    out = np.full((h + 24, w + 24, 3), 250, np.uint8)
    m = (mask > 127)[..., None]
    out[12 : 12 + h, 12 : 12 + w] = np.where(m, img, out[12 : 12 + h, 12 : 12 + w])
    return out


def shelf(rng: np.random.Generator, designs: list[Design], width: int = 1280, height: int = 720):
    """A shelf photo of the given designs: (BGR image, boxes xyxy [n, 4], design index [n])."""
    wall = np.float32(_hsv(rng)) * 0.4 + 120
    img = np.empty((height, width, 3), np.float32)
    img[:] = wall
    rows = int(rng.integers(3, 6))
    pitch = height // rows
    boxes, which = [], []
    for r in range(rows):
        base = (r + 1) * pitch - 10
        cv2.rectangle(img, (0, base), (width, base + 10), (90, 90, 95), -1)
        x = int(rng.integers(5, 40))
        while x < width - 40:
            k = int(rng.integers(len(designs)))
            hgt = int(pitch * rng.uniform(0.55, 0.9))
            front, mask = render(designs[k], hgt)
            h, w = mask.shape
            for _ in range(int(rng.integers(1, 4))):
                if x + w >= width - 5:
                    break
                y = base - h
                m = (mask > 127)[..., None]
                img[y:base, x : x + w] = np.where(m, front, img[y:base, x : x + w])
                boxes.append([x, y, x + w, base])
                which.append(k)
                x += w + int(rng.integers(1, 6))
            x += int(rng.integers(5, 25))
    # light: exposure, colour cast, a soft gradient
    gain = rng.uniform(0.6, 1.4) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    grad = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.2), width, dtype=np.float32)[None, :, None]
    img = np.clip(img * gain * grad, 0, 255).astype(np.uint8)
    # camera: a mild perspective warp, blur, noise, JPEG
    s = 0.04
    src = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    dst = src + rng.uniform(-s, s, (4, 2)).astype(np.float32) * np.float32([width, height])
    H = cv2.getPerspectiveTransform(src, dst)
    img = cv2.warpPerspective(img, H, (width, height), borderMode=cv2.BORDER_REPLICATE)
    pts = np.float32(boxes).reshape(-1, 2, 2)
    corners = np.stack(
        [
            pts[:, 0],
            np.stack([pts[:, 1, 0], pts[:, 0, 1]], 1),
            pts[:, 1],
            np.stack([pts[:, 0, 0], pts[:, 1, 1]], 1),
        ],
        1,
    )
    warped = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), H).reshape(-1, 4, 2)
    out_boxes = np.concatenate([warped.min(1), warped.max(1)], 1).clip(0, [width, height, width, height])
    sigma = rng.uniform(0.3, 1.2)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = np.clip(img.astype(np.float32) + rng.normal(0, rng.uniform(1, 5), img.shape), 0, 255).astype(
        np.uint8
    )
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 95))])
    img = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    return img, out_boxes.astype(np.float64), np.array(which, np.int64)
