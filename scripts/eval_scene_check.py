#!/usr/bin/env python3
"""Judge the scene check on images it never saw, through the runtime's own ``SceneCheck``.

    python scripts/eval_scene_check.py [--model-dir edgecv/runtime/scene] [--grocery-store DIR] [--count 60]
                                       [--json OUT] [--pictures DIR]

Sets (nothing here is used in training):
  * in-domain, drawn by the training generator at fresh seeds (retail / facade / surface);
  * in-domain, drawn another way: the plainer shelves of ``scripts/heldout/shelves_plain`` (retail);
  * real in-store photos (retail), with ``--grocery-store``: the test split of the classes training may use
    (Fruit, Vegetables, Juice, Milk) and of the classes held out from everything (Oat-Milk, Oatghurt,
    Sour-Cream, Sour-Milk, Soy-Milk, Soyghurt, Yoghurt);
  * negatives: photos shipped inside other packages' wheels and procedural images
    (``scripts/heldout/negatives``).
For each set: how often each model's check accepts the image at the models' thresholds (read from
``models/*/model.json``), and the mean score of the expected scene.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from edgecv.runtime.package import DomainSpec  # noqa: E402
from edgecv.runtime.scene import SCENE_DIR, SceneCheck  # noqa: E402

EVAL_SEED = 424242
HELD_OUT_CLASSES = tuple(
    f"Packages/{c}"
    for c in ("Oat-Milk", "Oatghurt", "Sour-Cream", "Sour-Milk", "Soy-Milk", "Soyghurt", "Yoghurt")
)
ALLOWED_CLASSES = ("Fruit", "Vegetables", "Packages/Juice", "Packages/Milk")


def package_specs() -> dict[str, DomainSpec]:
    specs = {}
    for manifest in sorted((ROOT / "models").glob("*/model.json")):
        raw = json.loads(manifest.read_text())
        if "domain" in raw:
            specs[raw["name"]] = DomainSpec(
                raw["domain"]["scene"], float(raw["domain"].get("threshold", 0.5))
            )
    return specs


def synthetic(domain: str, count: int) -> list[np.ndarray]:
    from datagen import common as C
    from datagen import domain_module

    mod = domain_module(domain)
    return [mod.make(C.image_rng(EVAL_SEED, i, domain), 1280, 720).image for i in range(count)]


def plain_shelves(count: int) -> list[np.ndarray]:
    from heldout.shelves_plain import render

    return [render(np.random.default_rng([EVAL_SEED, i]))[0] for i in range(count)]


def grocery(root: Path, split: str, classes: tuple[str, ...], count: int) -> list[np.ndarray]:
    paths = []
    for cls in classes:
        paths += sorted((root / "dataset" / split / cls).rglob("*.jpg"))
    step = max(1, len(paths) // count)
    return [img for p in paths[::step][:count] if (img := cv2.imread(str(p))) is not None]


def negatives() -> tuple[list[np.ndarray], list[np.ndarray]]:
    from heldout.negatives import photo_negatives, procedural_negatives

    return [n[2] for n in photo_negatives()], [n[2] for n in procedural_negatives(per_kind=5, seed=EVAL_SEED)]


def judge(
    check: SceneCheck, images: list[np.ndarray], specs: dict[str, DomainSpec], expected: str | None
) -> dict:
    scores = [check.scores(img) for img in images]
    row: dict = {"images": len(images)}
    for model, spec in specs.items():
        row[f"accept:{model}"] = (
            float(np.mean([s[spec.scene] >= spec.threshold for s in scores])) if scores else None
        )
    if expected is not None and scores:
        row["meanScore"] = float(np.mean([s[expected] for s in scores]))
    if scores:
        top = [max(s, key=s.get) for s in scores]
        row["argmax"] = {k: top.count(k) for k in check.scenes if top.count(k)}
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, default=SCENE_DIR)
    ap.add_argument("--grocery-store", type=Path)
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    check = SceneCheck(a.model_dir)
    specs = package_specs() or {
        "retail": DomainSpec("retail", 0.5),
        "facade": DomainSpec("facade", 0.5),
        "surface": DomainSpec("surface", 0.5),
    }
    sets: dict[str, tuple[list[np.ndarray], str | None]] = {
        "generator retail (fresh seed)": (synthetic("shelves", a.count), "retail"),
        "generator facade (fresh seed)": (synthetic("facades", a.count), "facade"),
        "generator surface (fresh seed)": (synthetic("damage", a.count), "surface"),
        "plain shelves (other style)": (plain_shelves(a.count), "retail"),
    }
    if a.grocery_store:
        sets["grocery test, allowed classes"] = (
            grocery(a.grocery_store, "test", ALLOWED_CLASSES, 4 * a.count),
            "retail",
        )
        sets["grocery test, held-out classes"] = (
            grocery(a.grocery_store, "test", HELD_OUT_CLASSES, 4 * a.count),
            "retail",
        )
    photos, procedural = negatives()
    sets["negative photos (other packages)"] = (photos, None)
    sets["negative procedural"] = (procedural, None)
    report = {name: judge(check, imgs, specs, exp) for name, (imgs, exp) in sets.items()}
    models = list(specs)
    print(f"{'set':36s} {'n':>4s} " + " ".join(f"{m[:22]:>22s}" for m in models) + "  mean  argmax")
    for name, row in report.items():
        accepts = " ".join(f"{row[f'accept:{m}']:22.2f}" for m in models)
        mean = f"{row['meanScore']:.2f}" if "meanScore" in row else "  - "
        print(f"{name:36s} {row['images']:4d} {accepts}  {mean}  {row.get('argmax')}")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
