"""Training images: a YOLO-format dataset (``images/`` + ``labels/`` + class names), cached letterboxed, with augmentation.

Any folder laid out the Ultralytics way works: ``DIR/images/*.jpg|png``, ``DIR/labels/<stem>.txt`` with one
``class cx cy w h`` line per box (normalised 0..1), and class names in ``DIR/names.txt`` (one per line) or
``DIR/data.yaml`` (``names:`` list or mapping). Images without a label file are negatives.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from edgecv.errors import ImageUnreadable
from edgecv.imageio import decode, decode_file

from .dataset import IMAGE_SUFFIXES, read_names

log = logging.getLogger(__name__)

PAD = 114


def list_images(root: Path) -> list[Path]:
    img_dir = Path(root) / "images"
    if not img_dir.is_dir():
        raise FileNotFoundError(f"{root}: expected an images/ folder")
    return sorted(p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_labels(label_path: Path, w: int, h: int) -> np.ndarray:
    """``[n, 5]`` = class, x1, y1, x2, y2 in image pixels."""
    if not label_path.is_file():
        return np.zeros((0, 5), np.float32)
    rows = [ln.split() for ln in label_path.read_text().splitlines() if ln.strip()]
    if not rows:
        return np.zeros((0, 5), np.float32)
    a = np.array([[float(v) for v in r[:5]] for r in rows], np.float32)
    cx, cy, bw, bh = a[:, 1] * w, a[:, 2] * h, a[:, 3] * w, a[:, 4] * h
    return np.stack((a[:, 0], cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), 1)


def letterbox(img: np.ndarray, width: int, height: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect ratio, centre on a ``PAD`` canvas (as edgecv.runtime does, INTER_LINEAR).

    Returns image, scale, (pad_x, pad_y)."""
    h0, w0 = img.shape[:2]
    r = min(width / w0, height / h0)
    nw, nh = round(w0 * r), round(h0 * r)
    px, py = round((width - nw) / 2 - 0.1), round((height - nh) / 2 - 0.1)
    out = np.full((height, width, 3), PAD, np.uint8)
    out[py : py + nh, px : px + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, r, (px, py)


@dataclass
class Augment:
    degrees: float = 5.0
    scale: float = 0.25
    translate: float = 0.08
    fliplr: float = 0.5
    hsv_h: float = 0.015
    hsv_s: float = 0.5
    hsv_v: float = 0.4
    blur: float = 0.15
    jpeg: float = 0.15
    noise: float = 0.1
    # probability of a random perspective warp (up to ``warp_frac`` of a side per corner) that leaves black
    # (or reflected) wedges at the borders, as a rectifying warp does; boxes follow (envelopes)
    border_warp: float = 0.0
    warp_frac: float = 0.15
    # probability of an exposure gain drawn from ``exposure_range`` (×0.5 … ×1.6, clipped as a camera does)
    exposure: float = 0.0
    exposure_range: tuple[float, float] = (0.5, 1.6)

    @classmethod
    def none(cls) -> Augment:
        return cls(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


class DetectionDataset:
    """Images letterboxed to the network size and kept in memory, with their boxes (``add``)."""

    def __init__(self, width: int, height: int, names: list[str]):
        self.width, self.height, self.names = width, height, names
        self.paths: list[Path] = []
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def add(self, path: Path, img: np.ndarray, lab: np.ndarray) -> None:
        """One decoded BGR image and its ``[n, 5]`` labels (class, x1, y1, x2, y2 in image pixels)."""
        lb, r, (px, py) = letterbox(img, self.width, self.height)
        lab = np.asarray(lab, np.float32).reshape(-1, 5).copy()
        lab[:, [1, 3]] = lab[:, [1, 3]] * r + px
        lab[:, [2, 4]] = lab[:, [2, 4]] * r + py
        self.paths.append(Path(path))
        self.images.append(lb)
        self.labels.append(lab)

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, i: int, aug: Augment, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
        img, lab = self.images[i], self.labels[i].copy()
        if aug.degrees or aug.scale or aug.translate:
            img, lab = random_affine(img, lab, aug, rng)
        else:
            img = img.copy()
        if aug.border_warp and rng.random() < aug.border_warp:
            img, lab = border_warp(img, lab, aug.warp_frac, rng)
        if aug.fliplr and rng.random() < aug.fliplr:
            img = img[:, ::-1].copy()
            lab[:, [1, 3]] = self.width - lab[:, [3, 1]]
        if aug.hsv_h or aug.hsv_s or aug.hsv_v:
            hsv_jitter(img, aug, rng)
        if aug.exposure and rng.random() < aug.exposure:
            gain = rng.uniform(*aug.exposure_range)
            img = cv2.convertScaleAbs(img, alpha=gain)  # saturates at 255
        if aug.blur and rng.random() < aug.blur:
            k = rng.choice((3, 5))
            img = cv2.GaussianBlur(img, (k, k), 0)
        if aug.noise and rng.random() < aug.noise:
            n = np.random.default_rng(rng.randrange(1 << 30)).normal(0, rng.uniform(2, 8), img.shape)
            img = np.clip(img.astype(np.float32) + n, 0, 255).astype(np.uint8)
        if aug.jpeg and rng.random() < aug.jpeg:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(30, 85)])
            img = decode(buf.tobytes())
        return img, lab

    def batch(self, idx: list[int], aug: Augment, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
        """``images [B,3,H,W]`` float RGB 0..1 and ``targets [K,6]`` = (batch index, class, x1, y1, x2, y2)."""
        ims, tg = [], []
        for bi, i in enumerate(idx):
            img, lab = self.sample(i, aug, rng)
            ims.append(img[:, :, ::-1])  # BGR -> RGB
            if len(lab):
                tg.append(np.concatenate((np.full((len(lab), 1), bi, np.float32), lab), 1))
        x = torch.from_numpy(np.ascontiguousarray(np.stack(ims))).permute(0, 3, 1, 2).float().div_(255)
        t = torch.from_numpy(np.concatenate(tg)) if tg else torch.zeros((0, 6))
        return x, t


class YoloDataset(DetectionDataset):
    """A YOLO folder, every image loaded once, letterboxed to the network size, kept in memory."""

    def __init__(self, root: Path, width: int, height: int, names: list[str] | None = None, limit: int = 0):
        self.root = Path(root)
        super().__init__(width, height, names or read_names(self.root))
        paths = list_images(self.root)
        if limit:
            paths = paths[:limit]
        if not paths:
            raise FileNotFoundError(f"{root}: images/ holds no images")
        n_boxes = 0
        for p in paths:
            try:
                img = decode_file(p)
            except ImageUnreadable as exc:
                raise ValueError(f"{p}: cannot decode image ({exc})") from None
            h0, w0 = img.shape[:2]
            lab = read_labels(self.root / "labels" / (p.stem + ".txt"), w0, h0)
            if len(lab) and lab[:, 0].max() >= len(self.names):
                raise ValueError(f"{p}: class id {int(lab[:, 0].max())} >= {len(self.names)} names")
            self.add(p, img, lab)
            n_boxes += len(lab)
        log.info("%s: %d images, %d boxes, %d classes", root, len(paths), n_boxes, len(self.names))


def random_affine(img: np.ndarray, lab: np.ndarray, aug: Augment, rng: random.Random):
    h, w = img.shape[:2]
    a = rng.uniform(-aug.degrees, aug.degrees)
    s = rng.uniform(1 - aug.scale, 1 + aug.scale)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), a, s)
    m[0, 2] += rng.uniform(-aug.translate, aug.translate) * w
    m[1, 2] += rng.uniform(-aug.translate, aug.translate) * h
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(PAD, PAD, PAD))
    if len(lab):
        lab = transform_boxes(lab, m, w, h)
    return out, lab


def border_warp(img: np.ndarray, lab: np.ndarray, frac: float, rng: random.Random):
    """A random perspective warp of the whole image whose corners move inward by up to ``frac`` of a side
    (keystone-like: often one edge narrowed), filling the uncovered wedges with black (70 %) or a reflection
    of the image. Boxes become the clipped envelopes of their warped corners."""
    h, w = img.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    d = [[rng.uniform(0, frac) * w, rng.uniform(0, frac) * h] for _ in range(4)]
    if rng.random() < 0.5:  # keystone: the wedges on one edge only
        edge = rng.randrange(4)
        for k in range(4):
            if k not in (edge, (edge + 1) % 4):
                d[k] = [rng.uniform(0, 0.02) * w, rng.uniform(0, 0.02) * h]
    sx = (1, -1, -1, 1)
    sy = (1, 1, -1, -1)
    dst = np.float32([[src[k][0] + sx[k] * d[k][0], src[k][1] + sy[k] * d[k][1]] for k in range(4)])
    m = cv2.getPerspectiveTransform(src, dst)
    black = rng.random() < 0.7
    out = cv2.warpPerspective(
        img,
        m,
        (w, h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT if black else cv2.BORDER_REFLECT_101,
        borderValue=(0, 0, 0),
    )
    if len(lab):
        x1, y1, x2, y2 = lab[:, 1], lab[:, 2], lab[:, 3], lab[:, 4]
        corners = np.stack(
            (np.stack((x1, y1), 1), np.stack((x2, y1), 1), np.stack((x2, y2), 1), np.stack((x1, y2), 1)), 1
        ).astype(np.float32)
        pts = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), m).reshape(-1, 4, 2)
        nx1, ny1, nx2, ny2 = pts[..., 0].min(1), pts[..., 1].min(1), pts[..., 0].max(1), pts[..., 1].max(1)
        area0 = (nx2 - nx1) * (ny2 - ny1)
        cx1, cy1, cx2, cy2 = np.clip(nx1, 0, w), np.clip(ny1, 0, h), np.clip(nx2, 0, w), np.clip(ny2, 0, h)
        keep = ((cx2 - cx1) * (cy2 - cy1) > 0.4 * np.maximum(area0, 1e-6)) & (cx2 - cx1 > 2) & (cy2 - cy1 > 2)
        lab = np.stack((lab[:, 0], cx1, cy1, cx2, cy2), 1)[keep].astype(np.float32)
    return out, lab


def transform_boxes(lab: np.ndarray, m: np.ndarray, w: int, h: int, min_keep: float = 0.4) -> np.ndarray:
    """Apply a 2×3 affine to boxes: the rotated box's envelope, shrunk toward the object for rotations
    (the envelope of a rotated rectangle overstates it), clipped; drop boxes mostly outside."""
    x1, y1, x2, y2 = lab[:, 1], lab[:, 2], lab[:, 3], lab[:, 4]
    corners = np.stack(
        (np.stack((x1, y1), 1), np.stack((x2, y1), 1), np.stack((x2, y2), 1), np.stack((x1, y2), 1)), 1
    )
    pts = corners @ m[:, :2].T + m[:, 2]
    nx1, ny1 = pts[..., 0].min(1), pts[..., 1].min(1)
    nx2, ny2 = pts[..., 0].max(1), pts[..., 1].max(1)
    area0 = (nx2 - nx1) * (ny2 - ny1)
    cx1, cy1 = np.clip(nx1, 0, w), np.clip(ny1, 0, h)
    cx2, cy2 = np.clip(nx2, 0, w), np.clip(ny2, 0, h)
    area1 = (cx2 - cx1) * (cy2 - cy1)
    keep = (area1 > min_keep * np.maximum(area0, 1e-6)) & (cx2 - cx1 > 2) & (cy2 - cy1 > 2)
    return np.stack((lab[:, 0], cx1, cy1, cx2, cy2), 1)[keep].astype(np.float32)


def hsv_jitter(img: np.ndarray, aug: Augment, rng: random.Random) -> None:
    gains = [rng.uniform(-1, 1) * g + 1 for g in (aug.hsv_h, aug.hsv_s, aug.hsv_v)]
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
    x = np.arange(0, 256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    cv2.cvtColor(merged, cv2.COLOR_HSV2BGR, dst=img)


def rotate_image_and_boxes(
    img: np.ndarray, boxes: np.ndarray, degrees: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a full image about its centre (same canvas) and return the boxes' envelopes (xyxy)."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    out = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    lab = np.concatenate((np.zeros((len(boxes), 1), np.float32), boxes.astype(np.float32)), 1)
    x1, y1, x2, y2 = lab[:, 1], lab[:, 2], lab[:, 3], lab[:, 4]
    corners = np.stack(
        (np.stack((x1, y1), 1), np.stack((x2, y1), 1), np.stack((x2, y2), 1), np.stack((x1, y2), 1)), 1
    )
    pts = corners @ m[:, :2].T + m[:, 2]
    env = np.stack((pts[..., 0].min(1), pts[..., 1].min(1), pts[..., 0].max(1), pts[..., 1].max(1)), 1)
    env[:, [0, 2]] = env[:, [0, 2]].clip(0, w)
    env[:, [1, 3]] = env[:, [1, 3]].clip(0, h)
    return out, env
