"""Five object kinds the building model was never taught, on facades drawn apart from ``scripts/datagen``
(none of its drawing code is imported): a user's "new class set" for ``edgecv models train --from
building-inspection-v1`` (issue 26's second target).

    python scripts/heldout/facade_kinds.py --out DIR --count N [--seed S] [--size 1280x720]

Kinds: satellite-dish, wall-lamp, vent-grille, awning, security-camera. The facades are plaster or brick
walls with plain windows and doors (not labelled: they are background for this class set), under a sky
band, with a little perspective, exposure and colour cast, blur, noise and JPEG. Writes DIR/images/*.jpg,
DIR/labels/*.txt (YOLO) and DIR/names.txt, no split (the command makes one). Image i depends only on
(seed, i).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script too
from heldout.yolo import cli, write_yolo  # noqa: E402

NAMES = ["satellite-dish", "wall-lamp", "vent-grille", "awning", "security-camera"]
PLASTER = [
    (200, 215, 225),
    (150, 190, 215),
    (120, 150, 170),
    (215, 225, 230),
    (170, 180, 140),
    (110, 120, 200),
]
BRICK = [(60, 80, 150), (70, 90, 120), (90, 110, 160), (80, 80, 90)]


def _c(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _dark(c, f: float = 0.6):
    return tuple(int(v * f) for v in c)


def _wall(rng, w, h):
    """Plaster (noise, stains) or brick (courses, mortar) filling the image; returns the image."""
    if rng.random() < 0.55:
        base = np.array(PLASTER[rng.integers(len(PLASTER))], np.float32) * rng.uniform(0.8, 1.15)
        noise = cv2.resize(rng.normal(0, 1, (h // 16, w // 16)).astype(np.float32), (w, h))
        img = base * (1 + 0.06 * noise[..., None]) + rng.normal(0, 4, (h, w, 1))
        img = np.clip(img, 0, 255).astype(np.uint8)
        for _ in range(int(rng.integers(0, 4))):  # water stains
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.ellipse(
                img,
                (x, y),
                (int(rng.integers(20, 80)), int(rng.integers(40, 160))),
                0,
                0,
                360,
                _dark(base, 0.85),
                -1,
            )
        return cv2.GaussianBlur(img, (0, 0), 1.2)
    base = BRICK[rng.integers(len(BRICK))]
    mortar = _c(rng, 150, 210)
    img = np.full((h, w, 3), mortar, np.uint8)
    bh = int(rng.integers(9, 16))
    bw = int(bh * rng.uniform(2.2, 3.0))
    for r, y in enumerate(range(0, h, bh)):
        off = (bw // 2) * (r % 2)
        for x in range(-off, w, bw):
            shade = rng.uniform(0.8, 1.2)
            cv2.rectangle(
                img,
                (x + 1, y + 1),
                (x + bw - 2, y + bh - 2),
                tuple(int(min(255, v * shade)) for v in base),
                -1,
            )
    return img


def _window(img, rng, x, y, w, h, frame):
    cv2.rectangle(img, (x - 3, y - 3), (x + w + 3, y + h + 3), frame, -1)
    glass = _c(rng, 40, 120)
    cv2.rectangle(img, (x, y), (x + w, y + h), glass, -1)
    cv2.line(img, (x + w // 2, y), (x + w // 2, y + h), frame, 2)
    if rng.random() < 0.5:
        cv2.line(img, (x, y + h // 3), (x + w, y + h // 3), frame, 2)
    cv2.rectangle(img, (x - 6, y + h + 3), (x + w + 6, y + h + 8), _dark(frame, 0.8), -1)  # sill


def _dish(img, rng, cx, cy, r):
    """A dish seen a little from the side, its feed arm and a wall bracket; returns its box."""
    colour = _c(rng, 180, 250) if rng.random() < 0.8 else _c(rng, 40, 90)
    ry = int(r * rng.uniform(0.75, 1.0))
    ang = float(rng.uniform(-25, 25))
    cv2.line(img, (cx, cy), (cx + int(r * 0.9), cy + int(r * 0.9)), (90, 90, 90), max(2, r // 8))  # bracket
    cv2.ellipse(img, (cx, cy), (r, ry), ang, 0, 360, colour, -1)
    cv2.ellipse(img, (cx, cy), (r, ry), ang, 0, 360, _dark(colour), 2)
    cv2.ellipse(img, (cx - r // 6, cy - r // 8), (r // 2, ry // 2), ang, 0, 360, _dark(colour, 0.9), 1)
    fx, fy = cx - int(r * 0.6), cy + int(r * 0.5)
    cv2.line(img, (cx, cy + ry // 2), (fx, fy), (70, 70, 70), max(1, r // 12))
    cv2.rectangle(img, (fx - 3, fy - 3), (fx + 3, fy + 3), (50, 50, 50), -1)
    return (
        min(cx - r, fx - 3),
        min(cy - ry, fy - 3),
        cx + int(r * 0.9) + 2,
        max(cy + ry, cy + int(r * 0.9)) + 2,
    )


def _lamp(img, rng, x, y, s):
    """A wall lamp: a back plate, an arm and a shade (cone or box) with a lit or dark glass."""
    plate = _c(rng, 20, 90)
    cv2.rectangle(img, (x, y), (x + s // 4, y + s // 2), plate, -1)
    cv2.line(img, (x + s // 4, y + s // 6), (x + s // 2, y + s // 6), plate, max(2, s // 10))
    lit = (170, 240, 255) if rng.random() < 0.5 else (90, 110, 120)
    if rng.random() < 0.5:
        pts = np.array(
            [
                [x + s // 3, y + s // 6],
                [x + s, y + s // 6],
                [x + s - s // 8, y + s],
                [x + s // 3 + s // 8, y + s],
            ],
            np.int32,
        )
        cv2.fillPoly(img, [pts], lit)
        cv2.polylines(img, [pts], True, plate, 2)
    else:
        cv2.rectangle(img, (x + s // 3, y), (x + s, y + s), plate, -1)
        cv2.rectangle(img, (x + s // 3 + 3, y + 3), (x + s - 3, y + s - 3), lit, -1)
    return x, y, x + s, y + s


def _grille(img, rng, x, y, w, h):
    """A vent grille: a frame with slats (horizontal, or a grid of holes)."""
    frame = _c(rng, 120, 230)
    cv2.rectangle(img, (x, y), (x + w, y + h), frame, -1)
    cv2.rectangle(img, (x, y), (x + w, y + h), _dark(frame), 2)
    if rng.random() < 0.6:
        for yy in range(y + 4, y + h - 2, max(3, h // 7)):
            cv2.line(img, (x + 3, yy), (x + w - 3, yy), _dark(frame, 0.4), 1)
    else:
        step = max(4, w // 6)
        for yy in range(y + step // 2, y + h - 2, step):
            for xx in range(x + step // 2, x + w - 2, step):
                cv2.circle(img, (xx, yy), max(1, step // 4), _dark(frame, 0.3), -1)
    return x, y, x + w, y + h


def _awning(img, rng, x, y, w, h):
    """A striped fabric awning sloping out over a shop window, with a scalloped or straight valance."""
    c1, c2 = _c(rng), (235, 235, 235) if rng.random() < 0.7 else _c(rng)
    drop = int(w * rng.uniform(0.04, 0.1))
    pts = np.array([[x + drop, y], [x + w - drop, y], [x + w, y + h], [x, y + h]], np.int32)
    cv2.fillPoly(img, [pts], c1)
    stripes = int(rng.integers(5, 12))
    for k in range(0, stripes, 2):
        a0, a1 = k / stripes, (k + 1) / stripes
        band = np.array(
            [
                [x + drop + a0 * (w - 2 * drop), y],
                [x + drop + a1 * (w - 2 * drop), y],
                [x + a1 * w, y + h],
                [x + a0 * w, y + h],
            ],
            np.int32,
        )
        cv2.fillPoly(img, [band], c2)
    val = max(4, h // 5)
    if rng.random() < 0.5:
        for k in range(stripes):
            cv2.ellipse(
                img,
                (int(x + (k + 0.5) * w / stripes), y + h),
                (int(w / stripes / 2), val),
                0,
                0,
                180,
                c1 if k % 2 else c2,
                -1,
            )
    else:
        cv2.rectangle(img, (x, y + h), (x + w, y + h + val), _dark(c1, 0.8), -1)
    return x, y, x + w, y + h + val


def _camera(img, rng, x, y, s, facing):
    """A security camera: a wall mount, an arm and a housing with a dark lens at the front."""
    body = _c(rng, 190, 250) if rng.random() < 0.75 else _c(rng, 30, 70)
    cv2.rectangle(img, (x, y), (x + s // 5, y + s // 2), _dark(body, 0.8), -1)
    hx = x + s // 5 if facing > 0 else x
    bw, bh = int(s * 0.8), max(6, s // 3)
    pts = np.array(
        [
            [hx, y + s // 4],
            [hx + bw, y + s // 4 + bh // 3],
            [hx + bw, y + s // 4 + bh],
            [hx, y + s // 4 + bh - bh // 4],
        ],
        np.int32,
    )
    cv2.fillPoly(img, [pts], body)
    cv2.polylines(img, [pts], True, _dark(body, 0.5), 1)
    lx = hx + bw - 3 if facing > 0 else hx + 3
    cv2.circle(img, (lx, y + s // 4 + bh * 2 // 3), max(2, bh // 3), (15, 15, 15), -1)
    return x, y, x + max(s // 5, hx + bw - x), y + s // 4 + bh + 1


def render(rng: np.random.Generator, width: int = 1280, height: int = 720):
    """One facade: (BGR image, boxes xyxy [n,4], classes [n])."""
    img = _wall(rng, width, height)
    sky = int(rng.uniform(0, 0.15) * height)
    if sky:
        img[:sky] = _c(rng, 150, 255)
        cv2.line(img, (0, sky), (width, sky), _c(rng, 30, 90), int(rng.integers(4, 12)))
    floors = int(rng.integers(2, 5))
    floor_h = (height - sky) // floors
    frame = _c(rng, 150, 255) if rng.random() < 0.7 else _c(rng, 20, 80)
    cols = int(rng.integers(3, 7))
    col_w = width // cols
    win_w, win_h = int(col_w * rng.uniform(0.35, 0.55)), int(floor_h * rng.uniform(0.4, 0.6))
    boxes, cls = [], []
    taken: list[tuple[int, int, int, int]] = []

    def free(b, pad=6):
        return all(
            b[2] + pad < t[0] or t[2] + pad < b[0] or b[3] + pad < t[1] or t[3] + pad < b[1] for t in taken
        )

    def add(b, k):
        b = (max(0, b[0]), max(0, b[1]), min(width - 1, b[2]), min(height - 1, b[3]))
        if b[2] - b[0] > 4 and b[3] - b[1] > 4:
            boxes.append(b)
            cls.append(k)

    for f in range(floors):
        fy = sky + f * floor_h
        ground = f == floors - 1
        for c in range(cols):
            x = c * col_w + (col_w - win_w) // 2
            y = fy + (floor_h - win_h) // 2
            if ground and c == int(rng.integers(cols)):
                door = (x, fy + floor_h // 4, x + win_w, fy + floor_h)
                cv2.rectangle(img, door[:2], door[2:], _c(rng, 30, 160), -1)
                taken.append(door)
                if rng.random() < 0.7:  # a lamp beside the door
                    s = int(rng.integers(16, 34))
                    lx = door[2] + 8 if rng.random() < 0.5 else door[0] - 8 - s
                    b = (lx, door[1] - s // 2, lx + s, door[1] + s // 2)
                    if free(b):
                        add(_lamp(img, rng, lx, door[1] - s // 2, s), 1)
                        taken.append(b)
                continue
            if rng.random() < 0.1:
                continue
            _window(img, rng, x, y, win_w, win_h, frame)
            taken.append((x - 8, y - 5, x + win_w + 8, y + win_h + 10))
            if ground and rng.random() < 0.55:  # a shop awning over the ground-floor window
                ah = int(rng.integers(25, 55))
                aw = win_w + int(rng.integers(10, 50))
                ax, ay = x - (aw - win_w) // 2, y - ah - 10
                b = _awning(img, rng, ax, ay, aw, ah)
                add(b, 3)
                taken.append(b)
    # loose objects on the free wall
    wanted = [0] * int(rng.integers(0, 4)) + [2] * int(rng.integers(1, 5)) + [4] * int(rng.integers(0, 4))
    wanted += [1] * int(rng.integers(0, 3))
    rng.shuffle(wanted)
    for k in wanted:
        for _ in range(30):
            if k == 0:
                r = int(rng.integers(18, 46))
                cx, cy = (
                    int(rng.integers(r + 5, width - 2 * r)),
                    int(rng.integers(sky + r + 5, height - 2 * r)),
                )
                b = (cx - r - 10, cy - r, cx + r + r, cy + 2 * r)
                if free(b):
                    add(_dish(img, rng, cx, cy, r), 0)
                    taken.append(b)
                    break
            elif k == 1:
                s = int(rng.integers(20, 40))
                x, y = int(rng.integers(0, width - s)), int(rng.integers(sky, height - s))
                b = (x, y, x + s, y + s)
                if free(b):
                    add(_lamp(img, rng, x, y, s), 1)
                    taken.append(b)
                    break
            elif k == 2:
                w = int(rng.integers(22, 64))
                h = int(w * rng.uniform(0.5, 1.2))
                x, y = int(rng.integers(0, width - w)), int(rng.integers(sky, height - h))
                b = (x, y, x + w, y + h)
                if free(b):
                    add(_grille(img, rng, x, y, w, h), 2)
                    taken.append(b)
                    break
            else:
                s = int(rng.integers(24, 50))
                x, y = int(rng.integers(0, width - s)), int(rng.integers(sky, height - s))
                b = (x, y, x + s, y + s)
                if free(b):
                    add(_camera(img, rng, x, y, s, 1 if rng.random() < 0.5 else -1), 4)
                    taken.append(b)
                    break
    boxes_a = np.array(boxes, np.float64).reshape(-1, 4)
    # camera: a small keystone / rotation, then light, blur, noise
    if rng.random() < 0.7:
        d = rng.uniform(-0.05, 0.05, (4, 2)) * [width, height]
        src = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
        m = cv2.getPerspectiveTransform(src, (src + d).astype(np.float32))
        img = cv2.warpPerspective(img, m, (width, height), borderMode=cv2.BORDER_REFLECT)
        if len(boxes_a):
            corners = np.stack(
                [boxes_a[:, [0, 1]], boxes_a[:, [2, 1]], boxes_a[:, [2, 3]], boxes_a[:, [0, 3]]], 1
            )
            warped = cv2.perspectiveTransform(corners.reshape(-1, 1, 2).astype(np.float32), m).reshape(
                -1, 4, 2
            )
            boxes_a = np.concatenate([warped.min(1), warped.max(1)], 1)
            boxes_a[:, [0, 2]] = boxes_a[:, [0, 2]].clip(0, width - 1)
            boxes_a[:, [1, 3]] = boxes_a[:, [1, 3]].clip(0, height - 1)
    gain = rng.uniform(0.6, 1.35) * rng.uniform(0.9, 1.1, 3)
    img = np.clip(img.astype(np.float32) * gain + rng.normal(0, rng.uniform(1, 6), img.shape), 0, 255)
    img = cv2.GaussianBlur(img.astype(np.uint8), (0, 0), rng.uniform(0.3, 1.2))
    keep = ((boxes_a[:, 2] - boxes_a[:, 0]) > 4) & ((boxes_a[:, 3] - boxes_a[:, 1]) > 4)
    return img, boxes_a[keep], np.array(cls, np.int64)[keep]


def write_set(out: Path, count: int, seed: int = 0, size: tuple[int, int] = (1280, 720)) -> Path:
    """Write ``count`` images with YOLO labels and names.txt to ``out``; returns ``out``."""
    return write_yolo(out, NAMES, "facade-kinds", render, count, seed, size, quality=lambda i: 70 + i % 25)


def main(argv: list[str] | None = None) -> int:
    return cli(__doc__, write_set, argv)


if __name__ == "__main__":
    raise SystemExit(main())
