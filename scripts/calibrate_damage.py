#!/usr/bin/env python3
"""Calibrate a damage package's area estimate to its own detector's boxes.

    python scripts/generate.py damage --out data/damage-sel --count 300 --seed 6000
    python scripts/calibrate_damage.py models/damage-assessment-v1 --data data/damage-sel [--write]

The damage pipeline estimates a stain's or spall's damaged pixels as ``fill[type] × box area``
(edgecv/vision/damage.py). Its default ``FILL`` is the share of the *true* box a blob covers. A detector's
boxes are not the true boxes: ours draw stains and spalls 6–16 % larger, which pushes instances over a
severity threshold. This script runs the package's detector on generated images with truth (seed 6000:
used neither for training, calibration of INT8, nor any evaluation), matches each truth instance to a
detection of the same type (IoU ≥ 0.5), and takes per type the median of true damaged pixels / detected
box area. With ``--write`` it stores them in the package's ``model.json`` as ``pipelineOptions.fill``
(the agent passes a package's ``pipelineOptions`` to its pipeline). Run it again after every re-export.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_pipelines import match  # noqa: E402

from edgecv.runtime.detector import Detector  # noqa: E402
from edgecv.runtime.package import load_package, read_manifest, write_manifest  # noqa: E402
from edgecv.vision import PipelineInput, get_pipeline  # noqa: E402
from edgecv.vision.damage import FILL  # noqa: E402

MIN_SAMPLES = 10  # fewer matched instances of a type: keep the default fill


def measure_fill(package_dir: Path, data: Path, limit: int = 0) -> dict[str, tuple[float, int]]:
    """Per damage type: (median true pixels / detected box area, matched instances)."""
    pkg = load_package(package_dir)
    detector = Detector.open(pkg)
    pipeline = get_pipeline("damage")
    truths = [json.loads(line) for line in (data / "truth.jsonl").open()]
    ratios: dict[str, list[float]] = defaultdict(list)
    for truth in truths[: limit or None]:
        image = cv2.imread(str(data / "images" / truth["image"]))
        res = pipeline(PipelineInput(image, detector.detect(image), list(pkg.labels)))
        area = float(truth["width"] * truth["height"])
        for i, got in match(res["detections"], truth["instances"], "class", 0.5).items():
            inst, box = truth["instances"][i], got["boundingBox"]
            if inst["class"] in FILL and box["width"] * box["height"] > 0:
                ratios[inst["class"]].append(inst["areaRatio"] * area / (box["width"] * box["height"]))
    return {k: (float(np.median(v)), len(v)) for k, v in sorted(ratios.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package", type=Path)
    ap.add_argument("--data", type=Path, required=True, help="generated damage folder with truth.jsonl")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--write", action="store_true", help="store the fills in model.json pipelineOptions")
    a = ap.parse_args(argv)
    fills = measure_fill(a.package, a.data, a.limit)
    chosen = {}
    for name, default in FILL.items():
        value, n = fills.get(name, (default, 0))
        keep = n >= MIN_SAMPLES
        chosen[name] = round(value, 3) if keep else default
        print(
            f"{name:15s} default {default:.3f}  measured {value:.3f} on {n:3d} instances  -> {chosen[name]:.3f}"
        )
    if a.write:
        manifest, _ = read_manifest(a.package)
        options = dict(manifest.get("pipelineOptions") or {})
        options["fill"] = chosen
        manifest["pipelineOptions"] = options
        write_manifest(a.package, manifest)
        print(f"wrote pipelineOptions.fill to {a.package / 'model.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
