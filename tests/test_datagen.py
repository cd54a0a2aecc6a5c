"""Synthetic data generators: determinism, label/image consistency, COCO validity, truth consistency."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


gen = load_script("generate")
SIZE = (640, 360)


def _available(domain: str) -> bool:
    return (SCRIPTS / "datagen" / f"{domain}.py").exists()


DOMAINS = [d for d in ("shelves", "facades", "damage", "shelves_wide") if _available(d)]


def _digest(folder: Path) -> dict[str, str]:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "data.yaml":
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module", params=DOMAINS)
def dataset(request, tmp_path_factory):
    domain = request.param
    out = tmp_path_factory.mktemp(domain)
    gen.generate(domain, out / "a", 3, 7, SIZE)
    return domain, out / "a"


def test_same_seed_same_bytes_and_count_can_grow(dataset, tmp_path):
    domain, a = dataset
    gen.generate(domain, tmp_path / "b", 3, 7, SIZE)
    assert _digest(a) == _digest(tmp_path / "b")
    # growing --count keeps earlier images identical
    gen.generate(domain, tmp_path / "c", 4, 7, SIZE)
    first = sorted((a / "images").iterdir())
    for p in first:
        assert p.read_bytes() == (tmp_path / "c" / "images" / p.name).read_bytes()
    # a different seed gives different images
    gen.generate(domain, tmp_path / "d", 1, 8, SIZE)
    d0 = sorted((tmp_path / "d" / "images").iterdir())[0].read_bytes()
    assert d0 != first[0].read_bytes()


def test_layout_labels_and_coco(dataset):
    domain, a = dataset
    names = (a / "names.txt").read_text().splitlines()
    images = sorted((a / "images").glob("*.jpg"))
    labels = sorted((a / "labels").glob("*.txt"))
    assert len(images) == len(labels) == 3
    coco = json.loads((a / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == names
    assert [c["id"] for c in coco["categories"]] == list(range(1, len(names) + 1))
    by_image = {im["id"]: im for im in coco["images"]}
    assert sorted(im["file_name"] for im in coco["images"]) == [p.name for p in images]
    truth = [json.loads(line) for line in (a / "truth.jsonl").read_text().splitlines()]
    assert [t["image"] for t in truth] == [p.name for p in images]
    n_ann = 0
    for img_path, lab_path in zip(images, labels, strict=True):
        assert img_path.stem == lab_path.stem
        img = cv2.imread(str(img_path))
        assert img.shape[:2] == (SIZE[1], SIZE[0])
        rows = [line.split() for line in lab_path.read_text().splitlines()]
        assert rows, "every image has objects"
        for r in rows:
            assert len(r) == 5
            cls = int(r[0])
            assert 0 <= cls < len(names)
            cx, cy, w, h = map(float, r[1:])
            assert 0 < w <= 1 and 0 < h <= 1
            assert 0 <= cx - w / 2 + 1e-6 and cx + w / 2 <= 1 + 1e-6
            assert 0 <= cy - h / 2 + 1e-6 and cy + h / 2 <= 1 + 1e-6
        n_ann += len(rows)
    assert len(coco["annotations"]) == n_ann
    for ann in coco["annotations"]:
        im = by_image[ann["image_id"]]
        x, y, w, h = ann["bbox"]
        assert 1 <= ann["category_id"] <= len(names)
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= im["width"] + 0.01 and y + h <= im["height"] + 0.01
    yaml = (a / "data.yaml").read_text()
    assert "train: images" in yaml and f"nc: {len(names)}" in yaml


def test_names_fixed_across_seeds(tmp_path):
    for domain in DOMAINS:
        gen.generate(domain, tmp_path / f"{domain}1", 1, 1, SIZE)
        gen.generate(domain, tmp_path / f"{domain}2", 1, 99, SIZE)
        n1 = (tmp_path / f"{domain}1" / "names.txt").read_text()
        n2 = (tmp_path / f"{domain}2" / "names.txt").read_text()
        assert n1 == n2
        assert n1.splitlines() == list(gen.domain_module(domain).NAMES)


def _truth(a: Path) -> list[dict]:
    return [json.loads(line) for line in (a / "truth.jsonl").read_text().splitlines()]


def _label_boxes(a: Path, stem: str, w: int, h: int) -> list[tuple[int, np.ndarray]]:
    out = []
    for line in (a / "labels" / f"{stem}.txt").read_text().splitlines():
        c, cx, cy, bw, bh = line.split()
        cx, cy, bw, bh = float(cx) * w, float(cy) * h, float(bw) * w, float(bh) * h
        out.append((int(c), np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])))
    return out


@pytest.mark.skipif("shelves" not in DOMAINS, reason="no shelves generator")
def test_shelf_truth_consistent(tmp_path):
    from datagen import shelves

    a = tmp_path / "s"
    gen.generate("shelves", a, 4, 3, SIZE)
    names = list(shelves.NAMES)
    for t in _truth(a):
        stem = t["image"][:-4]
        labels = _label_boxes(a, stem, t["width"], t["height"])
        prods = t["products"]
        tags = t["tags"]
        assert len(labels) == len(prods) + len(tags)
        # label order: products then tags, boxes equal to truth xyxy
        for (c, box), p in zip(labels, prods, strict=False):
            assert names[c] == p["sku"]
            assert np.allclose(box, p["xyxy"], atol=0.02)
        for (c, box), tg in zip(labels[len(prods) :], tags, strict=True):
            assert names[c] == "price-tag"
            assert np.allclose(box, tg["xyxy"], atol=0.02)
            assert len(tg["price"].split(".")[1]) == 2
        runs = {r["runId"]: r for r in t["runs"]}
        for rid, run in runs.items():
            members = [p for p in prods if p["runId"] == rid]
            assert run["facings"] == len(members)
            assert 0 <= run["facings"] <= run["plannedFacings"]
            assert all(p["sku"] == run["sku"] and p["row"] == run["row"] for p in members)
            assert all(p["attributes"]["facings"] == run["facings"] for p in members)
            assert sum(1 for tg in tags if tg["runId"] == rid) == 1
        s = t["summary"]
        assert s["totalProducts"] == len(prods)
        assert s["uniqueSKUs"] == len({p["sku"] for p in prods})
        visible = {p["sku"] for p in prods}
        planned = {it["sku"] for row in t["planogram"] for it in row["items"]}
        assert set(s["outOfStock"]) == planned - visible
        for sku in s["outOfStock"]:
            assert any(tg["sku"] == sku for tg in tags)
        want = sum(r["plannedFacings"] for r in runs.values())
        got = sum(min(r["facings"], r["plannedFacings"]) for r in runs.values())
        assert s["complianceScore"] == pytest.approx(got / want, abs=1e-4)
        assert [r["shelfPosition"] for r in t["rows"]] == [
            shelves.shelf_position(i, t["rowCount"]) for i in range(t["rowCount"])
        ]
        assert 3 <= t["rowCount"] <= 6


@pytest.mark.skipif("shelves_wide" not in DOMAINS, reason="no wide shelves generator")
def test_wide_shelves_label_made_up_packs_as_product(tmp_path):
    """The wide generator's own packs are class ``product``; demo SKUs among them keep their class."""
    from datagen import shelves, shelves_wide

    assert shelves_wide.NAMES[: len(shelves.NAMES)] == shelves.NAMES
    assert shelves_wide.NAMES[shelves_wide.PRODUCT_CLASS] == "product"
    a = tmp_path / "w"
    gen.generate("shelves_wide", a, 6, 11, SIZE)
    assert (a / "names.txt").read_text().split("\n")[:27] == [*shelves_wide.NAMES, ""]
    counts = np.zeros(len(shelves_wide.NAMES), int)
    for t in _truth(a):
        for c, (x1, y1, x2, y2) in _label_boxes(a, t["image"][:-4], SIZE[0], SIZE[1]):
            counts[c] += 1
            assert 0 <= x1 < x2 <= SIZE[0] + 0.01 and 0 <= y1 < y2 <= SIZE[1] + 0.01
    assert counts[shelves_wide.PRODUCT_CLASS] > 6 * 10  # mostly made-up packs
    assert counts[shelves.TAG_CLASS] > 0


def test_shelf_position_mapping():
    from datagen.shelves import shelf_position

    assert [shelf_position(i, 3) for i in range(3)] == ["top", "eye-level", "bottom"]
    assert [shelf_position(i, 5) for i in range(5)] == ["top", "eye-level", "middle", "middle", "bottom"]


@pytest.mark.skipif("facades" not in DOMAINS, reason="no facades generator")
def test_facade_truth_consistent(tmp_path):
    from datagen import facades

    a = tmp_path / "f"
    gen.generate("facades", a, 3, 5, SIZE)
    for t in _truth(a):
        labels = _label_boxes(a, t["image"][:-4], t["width"], t["height"])
        comps = t["components"]
        assert len(labels) == len(comps)
        n = t["storeyCount"]
        assert 1 <= n <= 8 and t["summary"]["storeyCount"] == n
        for (c, box), comp in zip(labels, comps, strict=True):
            assert facades.NAMES[c] == comp["class"]
            assert np.allclose(box, comp["xyxy"], atol=0.02)
            assert 0 <= comp["storey"] < n
            lo, hi = comp["storeySpan"]
            assert 0 <= lo <= comp["storey"] <= hi < n
            if comp["class"] == "door":
                assert comp["storey"] == 0
        assert sum(t["summary"]["componentCounts"].values()) == len(comps)
    assert facades.storey_of(99.0, [100.0, 50.0, 0.0]) == 0
    assert facades.storey_of(49.0, [100.0, 50.0, 0.0]) == 1
    assert facades.storey_of(-5.0, [100.0, 50.0, 0.0]) == 1


@pytest.mark.skipif("damage" not in DOMAINS, reason="no damage generator")
def test_damage_truth_consistent(tmp_path):
    from datagen import damage

    a = tmp_path / "d"
    gen.generate("damage", a, 4, 11, SIZE)
    for t in _truth(a):
        labels = _label_boxes(a, t["image"][:-4], t["width"], t["height"])
        inst = t["instances"]
        assert len(labels) == len(inst)
        sevs = []
        for (c, box), d in zip(labels, inst, strict=True):
            assert damage.NAMES[c] == d["class"]
            assert np.allclose(box, d["xyxy"], atol=0.02)
            if d["class"] == "crack":
                want = damage.crack_severity(d["lengthPx"], d["maxWidthPx"], t["width"], t["height"])
            else:
                want = damage.area_severity(d["class"], d["areaRatio"])
            assert d["severity"] == want
            sevs.append(d["severity"])
        s = t["summary"]
        assert s["conditionGrade"] == damage.condition_grade(sevs, s["damagedAreaRatio"])
    assert damage.condition_grade([], 0.0) == 1
    assert damage.condition_grade(["minor"], 0.01) == 2
    assert damage.condition_grade(["minor", "moderate"], 0.01) == 3
    assert damage.condition_grade(["severe"], 0.01) == 4
    assert damage.condition_grade(["severe", "severe"], 0.01) == 5
    assert damage.crack_severity(100, 9, 1280, 720) == "severe"
    assert damage.crack_severity(100, 1, 1280, 720) == "minor"
