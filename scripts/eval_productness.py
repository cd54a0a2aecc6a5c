#!/usr/bin/env python3
"""Does a shelf model find products whatever their packaging? Class-agnostic figures on three held-out sets.

    python scripts/eval_productness.py models/shelf-detection-v2 [--count 200,100,60] [--work DIR]

Sets (generated into --work once; none is a training seed, docs/training.md "Seed ranges"):
  * demo shelves (`shelves`, seed 5000), the 24 demo SKUs;
  * wide shelves (`shelves_wide`, seed 5000), packs made up per image;
  * the plain style (`scripts/heldout/shelves_plain.py`, seed 7000), drawn apart from the generators.
Every class but `price-tag` counts as a product. Per set: COCO mAP over {product, price-tag}, product
AP / recall / extra boxes and tag recall at the package threshold, and the same recall the way a job sees
the images (the scene check first: a refused image has no detections). Prints the CPU's vector extensions.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from edgecv.evaluation import evaluate_grouped  # noqa: E402
from edgecv.runtime.package import load_package  # noqa: E402
from edgecv.runtime.scene import SceneCheck  # noqa: E402
from edgecv.threads import cpu_flags_text  # noqa: E402


def agnostic_copy(src: Path, dst: Path, tag_class: int) -> Path:
    """``src`` (YOLO) relabelled 0 = product, 1 = price-tag; images linked, not copied."""
    (dst / "labels").mkdir(parents=True, exist_ok=True)
    if not (dst / "images").exists():
        (dst / "images").symlink_to(src / "images")
    for f in (src / "labels").glob("*.txt"):
        rows = [ln.split() for ln in f.read_text().splitlines() if ln.strip()]
        (dst / "labels" / f.name).write_text(
            "".join(" ".join(["1" if int(r[0]) == tag_class else "0", *r[1:]]) + "\n" for r in rows)
        )
    (dst / "names.txt").write_text("product\nprice-tag\n")
    return dst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("package", type=Path)
    ap.add_argument("--count", default="200,100,60", help="images per set: demo, wide, plain")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgecv-productness")
    a = ap.parse_args(argv)
    from datagen import shelves
    from generate import generate
    from heldout import shelves_plain

    n_demo, n_wide, n_plain = (int(v) for v in a.count.split(","))
    sets = {}
    for domain, n in (("shelves", n_demo), ("shelves_wide", n_wide)):
        raw = a.work / f"{domain}-5000-{n}"
        if not (raw / "names.txt").exists():
            generate(domain, raw, n, 5000)
        sets[f"{domain} seed 5000"] = agnostic_copy(raw, a.work / f"{domain}-5000-{n}-agnostic", shelves.TAG_CLASS)
    plain = a.work / f"plain-7000-{n_plain}"
    if not (plain / "names.txt").exists():
        shelves_plain.write_set(plain, n_plain, seed=7000)
    sets["plain style seed 7000"] = plain

    pkg = load_package(a.package)
    groups = {"product": [n for n in pkg.labels if n != "price-tag"], "price-tag": ["price-tag"]}
    scene = SceneCheck()
    print(f"{pkg.name} {pkg.version}, OpenVINO INT8; CPU flags: {cpu_flags_text()}")
    for name, folder in sets.items():
        r = evaluate_grouped(pkg, folder, groups, scene=scene)
        p, t = r["groups"]["product"], r["groups"]["price-tag"]
        job = r["job"]
        print(
            f"{name:22s} {r['images']:4d} images | product recall {p['recall']:.3f} extra {100 * p['extraBoxes']:.1f}% "
            f"AP50 {p.get('AP50', 0):.3f} AP50-95 {p.get('AP50_95', 0):.3f} | tag recall {t['recall']:.3f} | "
            f"job: {job['refused']} refused, product recall {job['groups']['product']['recall']:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
