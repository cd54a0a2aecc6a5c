"""A second, plainer drawing style of retail shelves, written apart from ``scripts/datagen`` (none of its
drawing code is imported): flat-coloured packs with a label band, bottles, boxes and cans on coloured
boards, a price tag on the board under the first pack of each run, no perspective.

    python scripts/heldout/shelves_plain.py --out DIR --count N [--seed S] [--size 1280x720]

Writes DIR/images/*.jpg, DIR/labels/*.txt (YOLO, class-agnostic: 0 = product, 1 = price-tag) and
DIR/names.txt. Image i depends only on (seed, i).
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script too
from heldout.yolo import cli, write_yolo  # noqa: E402

NAMES = ["product", "price-tag"]
WALLS = [(200, 230, 245), (90, 60, 40), (235, 235, 235), (60, 110, 60), (160, 200, 250), (70, 70, 110)]
BOARDS = [(40, 40, 200), (60, 160, 60), (170, 90, 30), (30, 160, 230), (150, 150, 160), (200, 200, 60)]
LETTERS = "ABCDEFGHKLMNPRSTUVXZ"


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _text(img, text, x, y, scale, colour):
    cv2.putText(img, text, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _pack(img, rng, x, y2, w, h, c1, c2):
    """A flat pack with a contrasting label band and a short word."""
    y1 = y2 - h
    cv2.rectangle(img, (x, y1), (x + w - 1, y2 - 1), c1, -1)
    b1 = y1 + int(h * rng.uniform(0.3, 0.45))
    cv2.rectangle(img, (x, b1), (x + w - 1, b1 + max(6, h // 4)), c2, -1)
    _text(img, "".join(rng.choice(list(LETTERS), 2)), x + 3, b1 + max(6, h // 4) - 3, 0.3, (20, 20, 20))
    return x, y1, x + w, y2


def _bottle(img, rng, x, y2, w, h, c1, c2):
    """Body, sloped shoulders, neck and cap; the label band on the body."""
    y1 = y2 - h
    neck_w, cap_h = max(4, w // 3), max(4, h // 10)
    body_top = y1 + int(h * 0.38)
    cx = x + w // 2
    cv2.rectangle(img, (x, body_top), (x + w - 1, y2 - 1), c1, -1)
    shoulder = np.array(
        [
            [x, body_top],
            [x + w - 1, body_top],
            [cx + neck_w // 2, y1 + cap_h + h // 8],
            [cx - neck_w // 2, y1 + cap_h + h // 8],
        ],
        np.int32,
    )
    cv2.fillPoly(img, [shoulder], c1)
    cv2.rectangle(img, (cx - neck_w // 2, y1 + cap_h), (cx + neck_w // 2, y1 + cap_h + h // 8), c1, -1)
    cv2.rectangle(img, (cx - neck_w // 2 - 1, y1), (cx + neck_w // 2 + 1, y1 + cap_h), c2, -1)
    cv2.rectangle(img, (x, body_top + h // 6), (x + w - 1, body_top + h // 6 + h // 5), c2, -1)
    return x, y1, x + w, y2


def _box(img, rng, x, y2, w, h, c1, c2):
    """A carton with a top stripe and a round logo."""
    y1 = y2 - h
    cv2.rectangle(img, (x, y1), (x + w - 1, y2 - 1), c1, -1)
    cv2.rectangle(img, (x, y1), (x + w - 1, y1 + h // 6), c2, -1)
    cv2.circle(img, (x + w // 2, y1 + h // 2), max(3, min(w, h) // 4), c2, -1)
    cv2.rectangle(img, (x, y1), (x + w - 1, y2 - 1), tuple(int(v * 0.6) for v in c1), 1)
    return x, y1, x + w, y2


def _can(img, rng, x, y2, w, h, c1, c2):
    """A can: body between a silver top and bottom ellipse, a band of the second colour."""
    y1 = y2 - h
    e = max(2, w // 8)
    cv2.rectangle(img, (x, y1 + e), (x + w - 1, y2 - 1 - e), c1, -1)
    cv2.ellipse(img, (x + w // 2, y1 + e), (w // 2, e), 0, 0, 360, (190, 190, 190), -1)
    cv2.ellipse(img, (x + w // 2, y2 - 1 - e), (w // 2, e), 0, 0, 180, c1, -1)
    cv2.rectangle(img, (x, y1 + h // 2 - h // 8), (x + w - 1, y1 + h // 2 + h // 8), c2, -1)
    return x, y1, x + w, y2


# kind -> (draw, width range px at 1280, height as a share of the row's clearance)
KINDS = {
    "pack": (_pack, (28, 70), (0.45, 0.8)),
    "bottle": (_bottle, (22, 40), (0.7, 0.95)),
    "box": (_box, (40, 90), (0.55, 0.9)),
    "can": (_can, (24, 34), (0.35, 0.5)),
}


def _tag(img, rng, x, board_y, board_h, scale):
    w, h = int(46 * scale), int(max(10, min(board_h - 4, 18 * scale)))
    y = board_y + (board_h - h) // 2
    cv2.rectangle(
        img, (x, y), (x + w - 1, y + h - 1), (255, 255, 255) if rng.random() < 0.6 else (80, 230, 250), -1
    )
    _text(img, f"{rng.integers(0, 10)}.{rng.integers(0, 100):02d}", x + 3, y + h - 3, 0.35 * scale, (0, 0, 0))
    return x, y, x + w, y + h


def render(rng: np.random.Generator, width: int = 1280, height: int = 720):
    """One shelf image: (BGR image, boxes xyxy [n,4], classes [n]) with 0 = product, 1 = price-tag."""
    s = width / 1280
    wall = np.array(WALLS[rng.integers(len(WALLS))], np.float32)
    shade = np.linspace(rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.15), height, dtype=np.float32)[
        :, None, None
    ]
    img = np.clip(wall * shade * np.ones((height, width, 1), np.float32), 0, 255).astype(np.uint8)
    board = BOARDS[rng.integers(len(BOARDS))]
    rows = int(rng.integers(3, 7))
    board_h = int(rng.integers(18, 28) * s)
    top = int(rng.uniform(0.03, 0.08) * height)
    pitch = (height - top) // rows
    boxes, cls = [], []
    for r in range(rows):
        board_y = top + (r + 1) * pitch - board_h
        cv2.rectangle(img, (0, board_y), (width - 1, board_y + board_h - 1), board, -1)
        clearance = pitch - board_h - int(8 * s)
        x = int(rng.integers(6, 30) * s)
        while True:
            kind = list(KINDS)[rng.integers(len(KINDS))]
            draw, (wlo, whi), (hlo, hhi) = KINDS[kind]
            w, h = int(rng.integers(wlo, whi) * s), int(clearance * rng.uniform(hlo, hhi))
            facings = int(rng.integers(1, 5))
            if x + facings * (w + 3) > width - 10:
                break
            c1, c2 = _colour(rng), _colour(rng)
            tag = _tag(img, rng, x, board_y, board_h, s)
            boxes.append(tag)
            cls.append(1)
            for _ in range(facings):
                if rng.random() < 0.9:  # some facings are sold out: a gap, the tag stays
                    boxes.append(draw(img, rng, x, board_y, w, h, c1, c2))
                    cls.append(0)
                x += w + int(rng.integers(1, 5) * s)
            x = (
                max(x, tag[2])
                + int(rng.integers(4, 14) * s)
                + (int(rng.integers(40, 120) * s) if rng.random() < 0.1 else 0)
            )
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    return img, np.array(boxes, np.float64).reshape(-1, 4), np.array(cls, np.int64)


def write_set(out: Path, count: int, seed: int = 0, size: tuple[int, int] = (1280, 720)) -> Path:
    """Write ``count`` images with YOLO labels and names.txt to ``out``; returns ``out``."""
    return write_yolo(out, NAMES, "shelves-plain", render, count, seed, size)


def main(argv: list[str] | None = None) -> int:
    return cli(__doc__, write_set, argv)


if __name__ == "__main__":
    raise SystemExit(main())
