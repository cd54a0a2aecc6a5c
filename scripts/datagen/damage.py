"""Damage close-ups on concrete / plaster: cracks, spalling, efflorescence, rust staining, moisture stains,
exposed rebar. Each instance gets a severity (minor / moderate / severe) by the documented rules, each
image a conditionGrade (1-5). See docs/datasets.md.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edgecv.vision.damage import (  # the product's documented rules label the ground truth
    GRADES,
    REF_WIDTH,
    area_severity,
    condition_grade,
    crack_severity,
)

from . import common as C

DOMAIN = "damage"
NAMES: tuple[str, ...] = (
    "crack",
    "spalling",
    "efflorescence",
    "rust-stain",
    "moisture-stain",
    "exposed-rebar",
)
CLS = {n: i for i, n in enumerate(NAMES)}


def _surface(rng, h, w):
    kind = int(rng.integers(0, 2))
    if kind == 0:  # concrete
        base = C.jitter_color(rng, (150, 152, 150), 25)
        img = C.mottled(rng, h, w, base, 0.12, 16)
        ys = rng.integers(0, h, 1500)
        xs = rng.integers(0, w, 1500)
        for y, x in zip(ys, xs, strict=True):
            cv2.circle(
                img,
                (int(x), int(y)),
                int(rng.integers(1, 3)),
                tuple(c * rng.uniform(0.5, 0.8) for c in base),
                -1,
            )
        return img, "concrete"
    base = C.jitter_color(
        rng, [(205, 215, 222), (180, 200, 225), (215, 215, 210)][int(rng.integers(0, 3))], 15
    )
    return C.mottled(rng, h, w, base, 0.07, 10), "plaster"


def _blob(rng, h, w, cx, cy, rx, ry, rough=0.35):
    """An irregular filled blob mask (uint8 0/255) around (cx, cy)."""
    n = 64
    ang = np.linspace(0, 2 * math.pi, n, endpoint=False)
    low = np.convolve(rng.uniform(-1, 1, n + 10), np.ones(11) / 11, mode="valid") * 2.2
    r = 1 + rough * low + 0.06 * rng.uniform(-1, 1, n)
    pts = np.stack([cx + rx * r * np.cos(ang), cy + ry * r * np.sin(ang)], 1)
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA)
    return m


def _apply_color(canvas, mask, color, strength):
    a = (mask.astype(np.float32) / 255.0 * strength)[..., None]
    canvas += (np.float32(color)[None, None, :] - canvas) * a


def _bbox_mask(mask):
    ys, xs = np.nonzero(mask > 127)
    if len(xs) == 0:
        return None
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def generate(rng: np.random.Generator, W: int = 1280, H: int = 720):
    canvas, material = _surface(rng, H, W)
    k = W / REF_WIDTH
    n_inst = int(rng.choice([0, 1, 2, 3, 4], p=[0.06, 0.34, 0.3, 0.2, 0.1]))
    kinds = list(rng.choice(NAMES[:5], size=n_inst, p=[0.4, 0.15, 0.15, 0.15, 0.15]))
    inst = []  # dicts with class, mask, extra
    union = np.zeros((H, W), np.uint8)
    for kind in kinds:
        cx, cy = rng.uniform(0.15, 0.85) * W, rng.uniform(0.15, 0.85) * H
        if kind == "crack":
            mask = np.zeros((H, W), np.uint8)
            wmax_target = rng.choice([rng.uniform(1, 3), rng.uniform(3, 8), rng.uniform(8, 14)]) * k
            ang = rng.uniform(0, 2 * math.pi)
            length, max_w = 0.0, 0.0
            branches = [(cx, cy, ang, wmax_target, int(rng.integers(15, 60)))]
            while branches:
                x, y, a, wd, steps = branches.pop()
                for _ in range(steps):
                    a += rng.normal(0, 0.35)
                    step = rng.uniform(6, 14) * k
                    nx, ny = x + step * math.cos(a), y + step * math.sin(a)
                    if not (2 <= nx < W - 2 and 2 <= ny < H - 2):
                        break
                    t = max(1, int(round(wd)))
                    cv2.line(mask, (int(x), int(y)), (int(nx), int(ny)), 255, t, cv2.LINE_AA)
                    length += step
                    max_w = max(max_w, float(t))
                    x, y = nx, ny
                    wd = max(1.0, wd * rng.uniform(0.9, 1.0))
                    if rng.random() < 0.06 and len(branches) < 4:
                        branches.append(
                            (
                                x,
                                y,
                                a + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1),
                                wd * 0.6,
                                int(rng.integers(5, 25)),
                            )
                        )
            dark = C.jitter_color(rng, (35, 38, 40), 10)
            _apply_color(canvas, mask, dark, 0.92)
            inst.append({"class": "crack", "mask": mask, "lengthPx": length, "maxWidthPx": max_w})
        elif kind == "spalling":
            rx, ry = rng.uniform(0.04, 0.2) * W, rng.uniform(0.04, 0.2) * H
            mask = _blob(rng, H, W, cx, cy, rx, ry, 0.4)
            rough = C.mottled(rng, H, W, C.jitter_color(rng, (110, 115, 118), 15), 0.3, 40)
            a = (mask.astype(np.float32) / 255.0)[..., None]
            canvas += (rough - canvas) * a
            edge = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
            _apply_color(canvas, edge, (40, 40, 40), 0.7)
            inst.append({"class": "spalling", "mask": mask})
            if rng.random() < 0.5:  # exposed reinforcement inside the spall
                bars = np.zeros((H, W), np.uint8)
                vertical = rng.random() < 0.5
                nb = int(rng.integers(1, 3))
                th = max(3, int(rng.uniform(6, 12) * k))
                for b in range(nb):
                    off = (b - (nb - 1) / 2) * rng.uniform(2.5, 4) * th
                    if vertical:
                        cv2.line(
                            bars,
                            (int(cx + off), int(cy - ry * 1.5)),
                            (int(cx + off), int(cy + ry * 1.5)),
                            255,
                            th,
                        )
                    else:
                        cv2.line(
                            bars,
                            (int(cx - rx * 1.5), int(cy + off)),
                            (int(cx + rx * 1.5), int(cy + off)),
                            255,
                            th,
                        )
                bars = cv2.bitwise_and(bars, cv2.erode(mask, np.ones((5, 5), np.uint8)))
                if (bars > 127).sum() > 30:
                    _apply_color(canvas, bars, C.jitter_color(rng, (30, 60, 120), 15), 0.95)
                    ribs = np.zeros_like(bars)
                    for t in range(0, max(W, H), max(4, th)):
                        if vertical:
                            cv2.line(ribs, (0, t), (W, t), 255, 1)
                        else:
                            cv2.line(ribs, (t, 0), (t, H), 255, 1)
                    _apply_color(canvas, cv2.bitwise_and(ribs, bars), (20, 35, 70), 0.6)
                    inst.append({"class": "exposed-rebar", "mask": bars})
        elif kind == "efflorescence":
            mask = _blob(rng, H, W, cx, cy, rng.uniform(0.05, 0.25) * W, rng.uniform(0.05, 0.25) * H, 0.5)
            n = C.smooth_noise(rng, H, W, 30, 2)
            soft = (mask.astype(np.float32) / 255.0) * np.clip(0.55 + 0.6 * n, 0, 1)
            canvas += (np.float32((238, 240, 240))[None, None, :] - canvas) * (soft * 0.85)[..., None]
            mask = np.where(soft > 0.25, 255, 0).astype(np.uint8)
            inst.append({"class": "efflorescence", "mask": mask})
        elif kind == "rust-stain":
            rx, ry = rng.uniform(0.02, 0.07) * W, rng.uniform(0.08, 0.3) * H
            mask = _blob(rng, H, W, cx, cy + ry * 0.5, rx, ry, 0.3)
            grad = np.clip((np.arange(H, dtype=np.float32) - (cy - ry * 0.5)) / (2 * ry), 0, 1)
            soft = (mask.astype(np.float32) / 255.0) * (1 - 0.7 * grad)[:, None]
            canvas += (np.float32(C.jitter_color(rng, (30, 75, 150), 15))[None, None, :] - canvas) * (
                soft * 0.8
            )[..., None]
            mask = np.where(soft > 0.2, 255, 0).astype(np.uint8)
            inst.append({"class": "rust-stain", "mask": mask})
        else:  # moisture stain with a tide mark
            rx, ry = rng.uniform(0.06, 0.3) * W, rng.uniform(0.06, 0.3) * H
            mask = _blob(rng, H, W, cx, cy, rx, ry, 0.45)
            soft = cv2.GaussianBlur(mask, (0, 0), 4).astype(np.float32) / 255.0
            canvas *= (1 - 0.35 * soft)[..., None]
            ring = cv2.morphologyEx(mask, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8))
            _apply_color(canvas, ring, (60, 80, 95), 0.35)
            inst.append({"class": "moisture-stain", "mask": mask})

    boxes, instances, sevs = [], [], []
    area = float(W * H)
    for i, d in enumerate(inst):
        bb = _bbox_mask(d["mask"])
        if bb is None:
            continue
        pix = int((d["mask"] > 127).sum())
        union |= d["mask"] > 127
        ratio = round(pix / area, 5)  # rules are applied to the rounded values written to truth
        if d["class"] == "crack":
            d["lengthPx"], d["maxWidthPx"] = C.r2(d["lengthPx"]), C.r2(d["maxWidthPx"])
            sev = crack_severity(d["lengthPx"], d["maxWidthPx"], W, H)
        else:
            sev = area_severity(d["class"], ratio)
        sevs.append(sev)
        rec = {
            "id": i,
            "class": d["class"],
            "severity": sev,
            "areaRatio": round(ratio, 5),
            "xyxy": [C.r2(v) for v in bb],
            "boundingBox": C.box_dict(bb),
        }
        if d["class"] == "crack":
            rec["lengthPx"] = C.r2(d["lengthPx"])
            rec["maxWidthPx"] = C.r2(d["maxWidthPx"])
        boxes.append((CLS[d["class"]], bb))
        instances.append(rec)
    damaged = round(float((union > 0).sum()) / area, 5)
    grade = condition_grade(sevs, damaged)
    truth = {
        "domain": DOMAIN,
        "width": W,
        "height": H,
        "material": material,
        "instances": instances,
        "summary": {
            "conditionGrade": grade,
            "conditionLabel": GRADES[grade],
            "worstSeverity": max(sevs, key=["minor", "moderate", "severe"].index) if sevs else None,
            "damagedAreaRatio": round(damaged, 5),
            "instanceCounts": {n: sum(1 for x in instances if x["class"] == n) for n in NAMES},
        },
    }
    return canvas, boxes, truth


def make(rng: np.random.Generator, width: int, height: int):
    canvas, boxes, truth = generate(rng, width, height)
    img = C.photo_finish(canvas, rng, C.PhotoStyle(glare_prob=0.3, vignette=0.25))
    return C.Sample(img, C.jpeg_quality(rng), boxes, truth)
