"""Writing a held-out set as a YOLO folder, and the command line every held-out generator shares."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

# render(rng, width, height) -> (BGR image, boxes xyxy [n, 4], classes [n])
Render = Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def write_yolo(
    out: Path,
    names: list[str],
    prefix: str,
    render: Render,
    count: int,
    seed: int = 0,
    size: tuple[int, int] = (1280, 720),
    quality: Callable[[int], int] = lambda i: 88,
) -> Path:
    """Write ``count`` images (image i from ``render`` with rng (seed, i), JPEG ``quality(i)``) with YOLO
    labels and names.txt to ``out``; returns ``out``."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    (out / "names.txt").write_text("\n".join(names) + "\n")
    w, h = size
    for i in range(count):
        img, boxes, cls = render(np.random.default_rng([seed, i]), w, h)
        stem = f"{prefix}_{seed}_{i:06d}"
        cv2.imwrite(str(out / "images" / f"{stem}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, quality(i)])
        lines = [
            f"{c} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} {(b[3] - b[1]) / h:.6f}"
            for b, c in zip(boxes, cls, strict=True)
        ]
        (out / "labels" / f"{stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return out


def cli(doc: str, write_set: Callable[..., Path], argv: list[str] | None = None) -> int:
    """``--out DIR --count N [--seed S] [--size WxH]`` for a generator's ``write_set``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--count", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", default="1280x720")
    a = ap.parse_args(argv)
    w, h = (int(v) for v in a.size.lower().split("x"))
    write_set(a.out, a.count, a.seed, (w, h))
    print(f"wrote {a.count} images to {a.out}")
    return 0
