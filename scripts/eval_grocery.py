"""Catalogue recognition on real in-store photos: the Grocery Store Dataset (MIT; GitHub
marcusklasson/GroceryStoreDataset; not redistributed here: clone it and pass its folder).

    python scripts/eval_grocery.py --grocery-store DIR [--classes heldout|allowed] [--k 1 5]
                                   [--leave-out 0.33] [--seed 0]

Builds a catalogue (through ``edgecv.catalog.service``, as ``edgecv catalog add`` does) from k reference
images per class: k = 1 is the class's iconic pack shot (white background), k = 5 its first five train
photos; then runs the ``catalog match`` path (shelf detector's largest product box or the whole photo,
whichever matches better) on every test photo of those classes. Reports top-1 and top-5, then with a third
of the classes left out of the catalogue (their photos should come back "unknown product") the unknown-
product precision, recall and F1, and the time per photo beside the shelf detector's time per 1280x720
shelf image, with the CPU flags.

``--classes heldout`` (the figures that count): the package classes the project never trains or tunes on
(Oat-Milk, Oatghurt, Sour-Cream, Sour-Milk, Soy-Milk, Soyghurt, Yoghurt). ``allowed``: Juice and Milk,
which may be used for training and tuning (docs/catalog.md).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_catalog import cpu_flags  # noqa: E402

from edgecv.catalog import service  # noqa: E402
from edgecv.catalog.index import build  # noqa: E402
from edgecv.config import Config  # noqa: E402
from edgecv.imageio import decode  # noqa: E402
from edgecv.work.pool import DetectorPool  # noqa: E402

HELD_OUT = {"Oat-Milk", "Oatghurt", "Sour-Cream", "Sour-Milk", "Soy-Milk", "Soyghurt", "Yoghurt"}
ALLOWED = {"Juice", "Milk"}


def classes(root: Path, which: str) -> dict[str, dict]:
    """Fine class name -> {coarse, iconic, train [paths], test [paths]} for the chosen package group."""
    wanted = HELD_OUT if which == "heldout" else ALLOWED
    out: dict[str, dict] = {}
    with open(root / "dataset" / "classes.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            coarse = row["Coarse Class Name (str)"]
            if coarse not in wanted:
                continue
            name = row["Class Name (str)"]
            iconic = root / "dataset" / row["Iconic Image Path (str)"].lstrip("/")
            out[name] = {"coarse": coarse, "iconic": iconic, "train": [], "test": []}
    for split in ("train", "test"):
        for line in (root / "dataset" / f"{split}.txt").read_text().splitlines():
            rel = line.split(",")[0].strip()
            parts = Path(rel).parts
            if len(parts) >= 4 and parts[1] == "Packages" and parts[3] in out:
                out[parts[3]][split].append(root / "dataset" / rel)
    for v in out.values():
        v["train"].sort()
        v["test"].sort()
    return out


def run(
    args, data: dict[str, dict], k: int, catalogued: list[str], detectors, use_keypoints: bool = True
) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config(data_dir=Path(tmp) / "data", catalog=Path(tmp) / "catalog")
        for name in catalogued:
            refs = [data[name]["iconic"]] if k == 1 else data[name]["train"][:k]
            service.add_sku(cfg, name, [(p.name, p.read_bytes()) for p in refs], {"name": name})
        index = build(cfg.catalog_dir, cfg.cache_dir)
        detector = detectors.get("shelf-detection-v2")
        rows = []
        elapsed = []
        for name, v in data.items():
            for path in v["test"]:
                image = decode(path.read_bytes())
                t0 = time.perf_counter()
                m = service.match_image(
                    image, index, cfg.catalog_threshold, detector, top=5, use_keypoints=use_keypoints
                )
                elapsed.append(time.perf_counter() - t0)
                rows.append((name, m))
    return {"rows": rows, "ms": 1e3 * float(np.median(elapsed))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grocery-store", type=Path, required=True, help="a clone of GroceryStoreDataset")
    p.add_argument("--classes", choices=["heldout", "allowed"], default="heldout")
    p.add_argument("--k", type=int, nargs="+", default=[1, 5])
    p.add_argument("--leave-out", type=float, default=1 / 3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--keypoints",
        choices=["on", "off", "both"],
        default="both",
        help="catalog match with keypoint evidence (the default), without (appearance alone), or both",
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="also print unknown-product F1 over thresholds (choose thresholds on the allowed classes only)",
    )
    args = p.parse_args(argv)
    data = classes(args.grocery_store, args.classes)
    if not data:
        p.error(f"no package classes found under {args.grocery_store}/dataset")
    names = sorted(data)
    print(
        f"Grocery Store Dataset, {args.classes} package classes: {len(names)} classes, "
        f"{sum(len(v['test']) for v in data.values())} test photos; CPU flags: {cpu_flags()}"
    )
    detectors = DetectorPool(Config())
    det = detectors.get("shelf-detection-v2")
    shelf = np.full((720, 1280, 3), 128, np.uint8)
    det.detect(shelf)
    t = []
    for _ in range(20):
        t0 = time.perf_counter()
        det.detect(shelf)
        t.append(time.perf_counter() - t0)
    det_ms = 1e3 * float(np.median(t))
    rng = np.random.default_rng(args.seed)
    left_out = set(rng.choice(names, max(1, round(len(names) * args.leave_out)), replace=False).tolist())
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.keypoints]
    for k, use_kp in [(k, m) for k in args.k for m in modes]:
        full = run(args, data, k, names, detectors, use_kp)
        top1 = np.mean([m["candidates"][0]["sku"] == name for name, m in full["rows"]])
        top5 = np.mean([name in [c["sku"] for c in m["candidates"]] for name, m in full["rows"]])
        src = np.mean([m["source"] == "detector" for _, m in full["rows"]])
        part = run(args, data, k, [n for n in names if n not in left_out], detectors, use_kp)
        truth_unknown = np.array([name in left_out for name, _ in part["rows"]])
        said_unknown = np.array([m["sku"] is None for _, m in part["rows"]])
        tp = int((truth_unknown & said_unknown).sum())
        prec = tp / max(int(said_unknown.sum()), 1)
        rec = tp / max(int(truth_unknown.sum()), 1)
        f1 = 2 * prec * rec / max(prec + rec, 1e-9)
        if args.sweep:
            best = np.array([m["score"] for _, m in part["rows"]])
            cells = []
            for t in np.arange(0.60, 1.21, 0.05):
                said = best < t
                tp_ = int((truth_unknown & said).sum())
                p_, r_ = tp_ / max(int(said.sum()), 1), tp_ / max(int(truth_unknown.sum()), 1)
                cells.append(f"{t:.2f}: {2 * p_ * r_ / max(p_ + r_, 1e-9):.3f}")
            print(f"  unknown F1 by threshold on the best score: {', '.join(cells)}")
        print(
            f"k={k}, keypoints {'on' if use_kp else 'off'}: top-1 {top1:.3f}, top-5 {top5:.3f} ({len(full['rows'])} photos; the detector's box used "
            f"for {src:.0%}); {len(left_out)} classes left out: unknown product precision {prec:.3f} "
            f"recall {rec:.3f} F1 {f1:.3f}; {full['ms']:.1f} ms per photo (shelf detector alone "
            f"{det_ms:.1f} ms per 1280x720 image: {full['ms'] / det_ms:.1f}x)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
