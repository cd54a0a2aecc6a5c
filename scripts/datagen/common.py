"""Shared pieces of the synthetic data generators: rng, textures, photo finishing, geometry, writers.

Everything here is deterministic: randomness only comes from the ``np.random.Generator`` passed in, and
process-wide caches (noise field, fonts) are built from fixed seeds, so the same (seed, index) always
produces the same bytes whatever order images are generated in.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np

JPEG_QUALITY_RANGE = (60, 95)


def image_rng(seed: int, index: int, domain: str = "") -> np.random.Generator:
    """The generator for image ``index`` of a dataset with ``seed`` (independent of ``--count``)."""
    salt = sum((i + 1) * ord(c) for i, c in enumerate(domain))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, index, salt])))


# --------------------------------------------------------------------------------------------- fonts
@cache
def font(name: str = "sans") -> cv2.FontFace:
    """OpenCV 5's built-in fonts ("sans", "italic"); nothing is read from the machine's font folders."""
    return cv2.FontFace(name)


def text_size(text: str, size: int, weight: int = 700, face: str = "sans") -> tuple[int, int, int]:
    """(width, top, height) of ``text`` drawn at baseline y=0 (top is negative)."""
    x, y, w, h = cv2.getTextSize((4096, 4096), text, (0, 0), font(face), int(size), int(weight))
    return w, y, h


def put_text_fit(
    img: np.ndarray,
    text: str,
    box: tuple[float, float, float, float],
    color,
    weight: int = 700,
    face: str = "sans",
    align: str = "center",
    max_size: int | None = None,
) -> None:
    """Draw ``text`` as large as fits inside ``box`` (x1, y1, x2, y2), centred vertically."""
    x1, y1, x2, y2 = box
    bw, bh = max(1.0, x2 - x1), max(1.0, y2 - y1)
    size = int(max_size or bh)
    size = max(4, min(size, int(bh * 1.25)))
    w, top, h = text_size(text, size, weight, face)
    for _ in range(3):
        if w <= bw and h <= bh:
            break
        size = max(4, int(size * min(bw / max(w, 1), bh / max(h, 1)) * 0.97))
        w, top, h = text_size(text, size, weight, face)
    if align == "left":
        ox = x1
    elif align == "right":
        ox = x2 - w
    else:
        ox = x1 + (bw - w) / 2
    oy = y1 + (bh - h) / 2 - top
    cv2.putText(img, text, (int(round(ox)), int(round(oy))), color, font(face), size, weight)


# ------------------------------------------------------------------------------------------ textures
def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int, octaves: int = 3) -> np.ndarray:
    """Low-frequency value noise in about [-1, 1], float32 (h, w); built at 1/8 size, upsampled once."""
    sh, sw = max(2, h // 8), max(2, w // 8)
    out = np.zeros((sh, sw), np.float32)
    amp, total = 1.0, 0.0
    c = max(2, cells)
    for _ in range(octaves):
        gh = max(2, int(round(c * h / max(h, w))) + 1)
        gw = max(2, int(round(c * w / max(h, w))) + 1)
        grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (sw, sh), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        c *= 2
    out *= 1.0 / total
    if (sh, sw) == (h, w):
        return out
    return cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)


def mul_map(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    """In-place ``img *= m`` for a float32 (h, w, 3) image and a small (mh, mw) map upsampled bilinearly."""
    h, w = img.shape[:2]
    m3 = np.repeat(np.asarray(m, np.float32)[..., None], 3, axis=2)
    cv2.multiply(img, cv2.resize(m3, (w, h), interpolation=cv2.INTER_LINEAR), dst=img)
    return img


def to_u8(img: np.ndarray) -> np.ndarray:
    """Clip a float32 image to 0..255 and round to uint8."""
    cv2.threshold(img, 0, 0, cv2.THRESH_TOZERO, dst=img)
    return cv2.convertScaleAbs(img)


@lru_cache(maxsize=1)
def _noise_field() -> np.ndarray:
    """A fixed Gaussian noise field (uint8, 128 + 32 * N(0, 1)) sampled by random offsets per image."""
    n = np.random.default_rng(20261128).standard_normal((1152, 1536, 3))
    return np.clip(128.0 + 32.0 * n, 0, 255).astype(np.uint8)


def sensor_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    field_ = _noise_field()
    fh, fw = field_.shape[:2]
    if h > fh or w > fw:
        reps = (math.ceil(h / fh) + 1, math.ceil(w / fw) + 1, 1)
        field_ = np.tile(field_, reps)
        fh, fw = field_.shape[:2]
    y = int(rng.integers(0, fh - h + 1))
    x = int(rng.integers(0, fw - w + 1))
    return field_[y : y + h, x : x + w]


def wood_texture(rng: np.random.Generator, h: int, w: int, base) -> np.ndarray:
    """Horizontal wood grain, float32 BGR."""
    n = smooth_noise(rng, max(h, 4), max(w // 8, 4), 6, 2)
    n = cv2.resize(n, (w, h), interpolation=cv2.INTER_LINEAR)
    ys = np.arange(h, dtype=np.float32)[:, None]
    grain = np.sin((ys * rng.uniform(0.6, 1.4) + n * 18.0) * 0.9) * 0.5 + 0.5
    g = (0.85 + 0.2 * grain).astype(np.float32)
    return cv2.merge([g * np.float32(b) for b in base])


def brushed_metal(rng: np.random.Generator, h: int, w: int, base) -> np.ndarray:
    n = rng.standard_normal((max(h, 2), 1)).astype(np.float32)
    n = cv2.GaussianBlur(n, (1, 5), 0)
    n = np.repeat(n, w, axis=1)
    s = smooth_noise(rng, h, w, 3, 1)
    g = (1.0 + 0.04 * n + 0.06 * s).astype(np.float32)
    return cv2.merge([g * np.float32(b) for b in base])


def mottled(
    rng: np.random.Generator, h: int, w: int, base, amount: float = 0.1, cells: int = 8
) -> np.ndarray:
    """A flat colour with low-frequency blotches, float32 BGR (built small, upsampled once)."""
    sh, sw = max(2, h // 8), max(2, w // 8)
    n = smooth_noise(rng, sh * 8, sw * 8, cells, 3)
    n = cv2.resize(n, (sw, sh), interpolation=cv2.INTER_AREA)
    small = (1.0 + amount * n)[..., None] * np.asarray(base, np.float32)[None, None, :]
    return cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def jitter_color(rng: np.random.Generator, color, amount: float = 12.0) -> tuple[float, float, float]:
    return tuple(float(np.clip(c + rng.uniform(-amount, amount), 0, 255)) for c in color)


# ---------------------------------------------------------------------------------------- geometry
def random_homography(rng: np.random.Generator, w: int, h: int, strength: float = 0.025) -> np.ndarray:
    """A mild perspective: image corners moved by up to ``strength`` of the size, plus a small roll."""
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    d = rng.uniform(-strength, strength, (4, 2)) * np.float32([w, h])
    # keep it a coherent camera tilt: opposite corners move in related ways
    tilt_x = rng.uniform(-strength, strength) * h
    d[0, 1] += tilt_x
    d[3, 1] -= tilt_x
    d[1, 1] -= tilt_x
    d[2, 1] += tilt_x
    dst = (src + d.astype(np.float32)).astype(np.float32)
    ang = math.radians(rng.uniform(-1.2, 1.2))
    c, s = math.cos(ang), math.sin(ang)
    ctr = np.float32([w / 2, h / 2])
    dst = ((dst - ctr) @ np.float32([[c, s], [-s, c]]) + ctr).astype(np.float32)
    # shrink slightly so that nothing important leaves the frame
    dst = (dst - ctr) * 0.985 + ctr
    return cv2.getPerspectiveTransform(src, dst.astype(np.float32))


def transform_points(H: np.ndarray | None, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    if H is None:
        return pts
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ H.T
    return p[:, :2] / p[:, 2:3]


def bbox_of(pts: np.ndarray, w: int, h: int) -> tuple[float, float, float, float]:
    """Tight xyxy box of ``pts`` clipped to the image."""
    x1, y1 = pts.min(axis=0)
    x2, y2 = pts.max(axis=0)
    return (
        float(np.clip(x1, 0, w)),
        float(np.clip(y1, 0, h)),
        float(np.clip(x2, 0, w)),
        float(np.clip(y2, 0, h)),
    )


def rect_pts(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)


def mask_hull(mask: np.ndarray) -> np.ndarray:
    """Convex hull (continuous pixel-edge coordinates) of the pixels where ``mask`` > 127."""
    ys, xs = np.nonzero(mask > 127)
    if len(xs) == 0:
        return np.zeros((0, 2), np.float64)
    pts = np.stack([xs, ys], 1).astype(np.float32)
    hull = cv2.convexHull(pts).reshape(-1, 2)
    corners = np.concatenate([hull + np.float32(o) for o in ((0, 0), (1, 0), (0, 1), (1, 1))])
    return cv2.convexHull(corners).reshape(-1, 2).astype(np.float64)


def blend(canvas: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend float32 ``sprite`` (h, w, 3) with ``alpha`` (h, w, 1) in [0, 1] into ``canvas`` at (x, y)."""
    H, W = canvas.shape[:2]
    h, w = sprite.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x2 <= x1 or y2 <= y1:
        return
    sx, sy = x1 - x, y1 - y
    s = sprite[sy : sy + (y2 - y1), sx : sx + (x2 - x1)]
    a = alpha[sy : sy + (y2 - y1), sx : sx + (x2 - x1)]
    roi = canvas[y1:y2, x1:x2]
    roi += (s - roi) * a


def blend_premultiplied(canvas: np.ndarray, pre: np.ndarray, inv: np.ndarray, x: int, y: int) -> None:
    """``canvas = canvas * inv + pre`` at (x, y); ``pre`` = colour * alpha, ``inv`` = 1 - alpha (3 channels)."""
    H, W = canvas.shape[:2]
    h, w = pre.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x2 <= x1 or y2 <= y1:
        return
    sx, sy = x1 - x, y1 - y
    roi = canvas[y1:y2, x1:x2]
    roi *= inv[sy : sy + (y2 - y1), sx : sx + (x2 - x1)]
    roi += pre[sy : sy + (y2 - y1), sx : sx + (x2 - x1)]


def boxes_of(point_sets: list[np.ndarray], H: np.ndarray | None, w: int, h: int) -> list[tuple]:
    """Tight clipped xyxy boxes of many point sets after an optional homography (one vectorised pass)."""
    if not point_sets:
        return []
    lens = np.array([len(p) for p in point_sets])
    pts = transform_points(H, np.concatenate(point_sets))
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    x1 = np.clip(np.minimum.reduceat(pts[:, 0], starts), 0, w)
    y1 = np.clip(np.minimum.reduceat(pts[:, 1], starts), 0, h)
    x2 = np.clip(np.maximum.reduceat(pts[:, 0], starts), 0, w)
    y2 = np.clip(np.maximum.reduceat(pts[:, 1], starts), 0, h)
    return [(float(a), float(b), float(c), float(d)) for a, b, c, d in zip(x1, y1, x2, y2, strict=True)]


# ------------------------------------------------------------------------------------ photo finish
@dataclass
class PhotoStyle:
    gain_range: tuple[float, float] = (0.75, 1.15)
    vignette: float = 0.35
    glare_prob: float = 0.6
    blur_prob: float = 0.45
    motion_blur_prob: float = 0.1
    noise_sigma: tuple[float, float] = (1.5, 7.0)
    cast: float = 0.08
    extra: dict = field(default_factory=dict)


def photo_finish(img: np.ndarray, rng: np.random.Generator, style: PhotoStyle | None = None) -> np.ndarray:
    """Lighting gradient, vignette, glare, colour cast, blur and sensor noise; float32 in (modified), uint8 out."""
    st = style or PhotoStyle()
    h, w = img.shape[:2]
    gh, gw = 18, 32
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
    yy, xx = yy / (gh - 1) - 0.5, xx / (gw - 1) - 0.5
    ang = rng.uniform(0, 2 * math.pi)
    lin = (math.cos(ang) * xx + math.sin(ang) * yy) * rng.uniform(0.0, 0.5)
    g = rng.uniform(*st.gain_range) + lin
    cx, cy = rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)
    g = g - st.vignette * rng.uniform(0.2, 1.0) * ((xx - cx) ** 2 + (yy - cy) ** 2) * 1.6
    g = (g + 0.08 * rng.uniform(-1, 1, (gh, gw))).astype(np.float32)
    g = cv2.GaussianBlur(g, (0, 0), 1.0)
    add = np.zeros((gh, gw), np.float32)
    if rng.random() < st.glare_prob:
        for _ in range(int(rng.integers(1, 4))):
            gx, gy = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
            sx, sy = rng.uniform(0.03, 0.15), rng.uniform(0.02, 0.1)
            add += rng.uniform(40, 130) * np.exp(-(((xx - gx) / sx) ** 2 + ((yy - gy) / sy) ** 2))
    cast = (1.0 + rng.uniform(-st.cast, st.cast, 3)).astype(np.float32)
    g3 = g[..., None] * cast[None, None, :]
    cv2.multiply(img, cv2.resize(g3, (w, h), interpolation=cv2.INTER_LINEAR), dst=img)
    if add.max() > 0.5:
        a3 = np.repeat(add[..., None], 3, axis=2)
        cv2.add(img, cv2.resize(a3, (w, h), interpolation=cv2.INTER_LINEAR), dst=img)
    out = to_u8(img)
    r = rng.random()
    if r < st.motion_blur_prob:
        k = int(rng.integers(3, 8))
        ker = np.zeros((k, k), np.float32)
        ker[k // 2, :] = 1.0 / k
        rot = cv2.getRotationMatrix2D(((k - 1) / 2, (k - 1) / 2), rng.uniform(0, 180), 1.0)
        ker = cv2.warpAffine(ker, rot, (k, k))
        ker /= max(ker.sum(), 1e-6)
        out = cv2.filter2D(out, -1, ker)
    elif r < st.motion_blur_prob + st.blur_prob:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.3))
    sigma = rng.uniform(*st.noise_sigma)
    # noise field stored as uint8 128 + 32 * N(0, 1): out + sigma * N = out + sigma/32 * (field - 128)
    k = float(sigma) / 32.0
    return cv2.addWeighted(out, 1.0, sensor_noise(rng, h, w), k, -128.0 * k)


def jpeg_quality(rng: np.random.Generator) -> int:
    return int(rng.integers(JPEG_QUALITY_RANGE[0], JPEG_QUALITY_RANGE[1] + 1))


# -------------------------------------------------------------------------------------------- writer
@dataclass
class Sample:
    """One generated image: pixels, JPEG quality, boxes (class id + xyxy float pixels) and truth."""

    image: np.ndarray
    quality: int
    boxes: list[tuple[int, tuple[float, float, float, float]]]
    truth: dict


def box_dict(xyxy) -> dict:
    """The seed's integer ``boundingBox`` for a float xyxy box."""
    x1, y1, x2, y2 = xyxy
    x, y = int(round(x1)), int(round(y1))
    return {"x": x, "y": y, "width": max(0, int(round(x2)) - x), "height": max(0, int(round(y2)) - y)}


def r2(v: float) -> float:
    return round(float(v), 2)


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def yolo_lines(boxes, w: int, h: int) -> str:
    lines = []
    for cls, (x1, y1, x2, y2) in boxes:
        cx, cy = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h
        bw, bh = (x2 - x1) / w, (y2 - y1) / h
        lines.append(f"{cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


class DatasetWriter:
    """Writes images/, labels/, truth.jsonl incrementally and annotations.json, names.txt, data.yaml at close."""

    def __init__(self, out: Path, domain: str, names: list[str]):
        self.out = Path(out)
        self.domain = domain
        self.names = list(names)
        (self.out / "images").mkdir(parents=True, exist_ok=True)
        (self.out / "labels").mkdir(parents=True, exist_ok=True)
        self._truth = open(self.out / "truth.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self._images: list[dict] = []
        self._anns: list[dict] = []

    def add(self, index: int, stem: str, jpeg: bytes, w: int, h: int, boxes, truth: dict) -> None:
        (self.out / "images" / f"{stem}.jpg").write_bytes(jpeg)
        (self.out / "labels" / f"{stem}.txt").write_text(yolo_lines(boxes, w, h), encoding="utf-8")
        image_id = len(self._images) + 1
        self._images.append({"id": image_id, "file_name": f"{stem}.jpg", "width": w, "height": h})
        for cls, (x1, y1, x2, y2) in boxes:
            bw, bh = x2 - x1, y2 - y1
            self._anns.append(
                {
                    "id": len(self._anns) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [r2(x1), r2(y1), r2(bw), r2(bh)],
                    "area": r2(bw * bh),
                    "iscrowd": 0,
                }
            )
        self._truth.write(json.dumps(truth, separators=(",", ":"), sort_keys=False) + "\n")

    def close(self) -> None:
        self._truth.close()
        coco = {
            "info": {"description": f"edgecv synthetic {self.domain}", "version": "1"},
            "images": self._images,
            "annotations": self._anns,
            "categories": [
                {"id": i + 1, "name": n, "supercategory": self.domain} for i, n in enumerate(self.names)
            ],
        }
        (self.out / "annotations.json").write_text(json.dumps(coco, separators=(",", ":")), encoding="utf-8")
        (self.out / "names.txt").write_text("\n".join(self.names) + "\n", encoding="utf-8")
        names_yaml = "\n".join(f"  {i}: {json.dumps(n)}" for i, n in enumerate(self.names))
        (self.out / "data.yaml").write_text(
            f"# edgecv synthetic {self.domain} dataset (scripts/generate.py)\n"
            f"path: {self.out.resolve()}\n"
            "train: images\n"
            "val: images\n"
            f"nc: {len(self.names)}\n"
            f"names:\n{names_yaml}\n",
            encoding="utf-8",
        )
