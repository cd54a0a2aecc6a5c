"""Write the demo catalogue: the shelf generator's 24 SKUs as a store would describe them.

    python scripts/make_demo_catalog.py [--out edgecv/catalog/demo] [--crops 2]

Per SKU, a folder named by its id with the pack shot on white (``pack.png``), ``--crops`` crops of it from
generated shelf photos (seeds 770000 and up, apart from the demo inbox's and the training sets'), and a
``sku.json`` with its name, size, expected price and currency. The agent names the demo shelves' products
from it (scripts/demo.toml); the shipped copy lives in edgecv/catalog/demo.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datagen import shelves as S  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def sku_id(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def pack_shot(index: int) -> np.ndarray:
    img, alpha, _ = S.sprite(index)
    out = img * alpha + 250.0 * (1 - alpha)
    out = np.pad(np.clip(out, 0, 255).astype(np.uint8), ((12, 12), (12, 12), (0, 0)), constant_values=250)
    h, w = out.shape[:2]
    scale = 320 / max(h, w)
    return (
        cv2.resize(out, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        if scale < 1
        else out
    )


def shelf_crops(per_sku: int) -> dict[int, list[np.ndarray]]:
    """The largest visible crops of each SKU from generated shelves (largest: least likely occluded)."""
    found: dict[int, list[tuple[float, np.ndarray]]] = {i: [] for i in range(len(S.CATALOGUE))}
    seed = 770000
    while min(len(v) for v in found.values()) < 3 * per_sku and seed < 770400:
        sample = S.make(np.random.default_rng(seed), 1280, 720)
        seed += 1
        for cls, (x1, y1, x2, y2) in sample.boxes:
            if cls == S.TAG_CLASS or (x2 - x1) < 24:
                continue
            crop = sample.image[int(y1) : int(y2), int(x1) : int(x2)]
            found[cls].append(((x2 - x1) * (y2 - y1), crop.copy()))
    return {k: [c for _, c in sorted(v, key=lambda t: -t[0])[:per_sku]] for k, v in found.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "edgecv" / "catalog" / "demo")
    p.add_argument("--crops", type=int, default=2)
    args = p.parse_args(argv)
    crops = shelf_crops(args.crops) if args.crops else {}
    for i, sku in enumerate(S.CATALOGUE):
        folder = args.out / sku_id(sku.name)
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "pack.png"), pack_shot(i), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        for k, crop in enumerate(crops.get(i, [])):
            cv2.imwrite(str(folder / f"shelf-{k + 1}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
        meta = {
            "name": sku.name,
            "size": sku.size,
            "heightMm": sku.h_mm,
            "widthMm": sku.w_mm,
            "expectedPrice": sku.price,
            "currency": "EUR",
        }
        (folder / "sku.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {len(S.CATALOGUE)} SKUs to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
