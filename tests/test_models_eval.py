"""``edgecv models eval`` end to end with CliRunner: YOLO and COCO folders of the same labels, the printed
figures, and a folder without usable labels (the tiny red-rectangle model; a few images made here)."""

from __future__ import annotations

import json
import shutil

import cv2
import pytest
from click.testing import CliRunner
from helpers.runtime import red_rectangle_image

from edgecv.cli import main

pytest.importorskip("faster_coco_eval", reason="models eval needs faster-coco-eval (test extra)")

W, H = 320, 240
# one red rectangle per image (x1, y1, x2, y2); the rect model finds it exactly
BOXES = [(100, 60, 180, 140), (20, 120, 120, 200), (200, 30, 300, 90)]


def _write_images(folder):
    (folder / "images").mkdir(parents=True)
    for i, box in enumerate(BOXES):
        cv2.imwrite(str(folder / "images" / f"im{i}.png"), red_rectangle_image(W, H, box))


def _yolo(folder):
    _write_images(folder)
    (folder / "labels").mkdir()
    for i, (x1, y1, x2, y2) in enumerate(BOXES):
        cx, cy, bw, bh = (x1 + x2) / 2 / W, (y1 + y2) / 2 / H, (x2 - x1) / W, (y2 - y1) / H
        (folder / "labels" / f"im{i}.txt").write_text(f"0 {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}\n")
    return folder


def _coco(folder, extra_unknown: bool = False):
    _write_images(folder)
    cats = [{"id": 3, "name": "red-thing"}]
    anns = [
        {"id": i + 1, "image_id": i + 1, "category_id": 3, "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0}
        for i, (x1, y1, x2, y2) in enumerate(BOXES)
    ]
    if extra_unknown:
        cats.append({"id": 9, "name": "unicorn"})
        anns.append({"id": 99, "image_id": 1, "category_id": 9, "bbox": [5, 5, 30, 30], "iscrowd": 0})
    images = [{"id": i + 1, "file_name": f"im{i}.png", "width": W, "height": H} for i in range(len(BOXES))]
    (folder / "annotations.json").write_text(
        json.dumps({"images": images, "annotations": anns, "categories": cats})
    )
    return folder


@pytest.fixture
def cli(tmp_path, models_root):
    runner = CliRunner(
        env={
            "EDGECV_DATA_DIR": str(tmp_path / "data"),
            "EDGECV_MODELS_DIRS": str(models_root),
            "EDGECV_CONFIG": "",
        }
    )

    def invoke(*args):
        return runner.invoke(main, ["models", "eval", "rect", *args], catch_exceptions=False)

    return invoke


def test_text_output_prints_map50_and_map50_95(cli, tmp_path):
    res = cli("--data", str(_yolo(tmp_path / "yolo")))
    assert res.exit_code == 0, res.output
    lines = {
        ln.split(":")[0].strip(): ln.split(":")[1].strip() for ln in res.output.splitlines() if ":" in ln
    }
    assert float(lines["mAP50"]) > 0.5
    assert 0.0 < float(lines["mAP50-95"]) <= float(lines["mAP50"])


def test_yolo_and_coco_forms_of_the_same_labels_give_the_same_figures(cli, tmp_path):
    yolo = json.loads(cli("--data", str(_yolo(tmp_path / "yolo")), "--json").stdout)
    coco = json.loads(cli("--data", str(_coco(tmp_path / "coco")), "--json").stdout)
    assert yolo["format"] == "yolo" and coco["format"] == "coco"
    assert yolo["instances"] == coco["instances"] == len(BOXES)
    assert yolo["mAP50"] > 0.5
    for key in ("mAP50", "mAP50_95", "images", "detections", "per_class"):
        assert coco[key] == yolo[key], key


def test_coco_category_names_unknown_to_the_package_are_reported(cli, tmp_path):
    res = cli("--data", str(_coco(tmp_path / "coco", extra_unknown=True)))
    assert res.exit_code == 0, res.output
    assert "unicorn" in res.output and "not a label of rect" in res.output
    report = json.loads(cli("--data", str(tmp_path / "coco"), "--json").stdout)
    assert report["unknownCategories"] == {"unicorn": 1}
    assert report["instances"] == len(BOXES)  # the unicorn box is not scored


@pytest.mark.parametrize("layout", ["images-only", "coco-unknown-only", "empty-labels"])
def test_a_folder_without_usable_labels_is_an_error(cli, tmp_path, layout):
    folder = _yolo(tmp_path / "d")
    if layout == "images-only":
        shutil.rmtree(folder / "labels")
    elif layout == "empty-labels":
        for p in (folder / "labels").iterdir():
            p.write_text("")
    else:
        shutil.rmtree(folder / "labels")
        _coco(tmp_path / "c")
        data = json.loads((tmp_path / "c" / "annotations.json").read_text())
        data["categories"] = [{"id": 3, "name": "unicorn"}]
        (folder / "annotations.json").write_text(json.dumps(data))
    res = cli("--data", str(folder))
    assert res.exit_code != 0
    assert "no usable labels" in res.output
