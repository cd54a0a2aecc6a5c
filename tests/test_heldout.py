"""The held-out evaluation pieces on a few small images: matching, perturbations, negatives, the second
shelf style and class-agnostic scoring (the tiny red-rectangle model; no photo packages needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.runtime import red_rectangle_image

from edgecv.detections import Detections
from edgecv.evaluation import (
    VARIANTS,
    evaluate_grouped,
    evaluate_package,
    false_detections,
    match_greedy,
    precision_recall,
)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
from heldout import facade_kinds, negatives, shelves_plain  # noqa: E402

BOX = (100, 60, 180, 140)


def test_match_greedy_takes_each_truth_once_and_respects_classes():
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    dets = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 0, 30, 10]], float)
    assert match_greedy(truth, dets).tolist() == [0, -1, 1]
    assert match_greedy(truth, dets, 0.5, np.array([0, 1]), np.array([1, 0, 1])).tolist() == [-1, 0, 1]
    assert match_greedy(np.zeros((0, 4)), dets).tolist() == [-1, -1, -1]


def test_precision_recall_counts_extra_boxes_against_the_truth():
    truth = [(np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float), np.array([0, 0]), 40, 20)]
    d = Detections(np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 0, 60, 10]]), [0.9, 0.8, 0.1], [0, 0, 0])
    pr = precision_recall(truth, [d], conf=0.25)
    assert (pr["detections"], pr["matched"], pr["recall"], pr["precision"], pr["extraBoxes"]) == (
        2,
        1,
        0.5,
        0.5,
        0.5,
    )


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_perturbation_keeps_the_canvas_and_the_boxes_inside_it(name):
    img = red_rectangle_image(320, 240, BOX)
    for boxes in (np.array([BOX], float), np.zeros((0, 4))):
        out, b = VARIANTS[name](img, boxes)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert b.shape == boxes.shape
        assert (b[:, [0, 2]] >= 0).all() and (b[:, [0, 2]] <= 320).all() and (b[:, 1:4:2] <= 240).all()


def test_border_fill_leaves_black_wedges_keystone_does_not():
    img = np.full((240, 320, 3), 200, np.uint8)
    wedge = VARIANTS["border-fill"](img, np.zeros((0, 4)))[0]
    plain = VARIANTS["keystone-8%"](img, np.zeros((0, 4)))[0]
    assert wedge[0, 0].max() == 0 and wedge[120, 160].min() == 200
    assert plain[0, 0].min() == 200


def test_downscale_halves_the_objects_around_the_centre():
    out, b = VARIANTS["downscale-0.5"](red_rectangle_image(320, 240, BOX), np.array([BOX], float))
    assert b[0].tolist() == [130.0, 90.0, 170.0, 130.0]
    ys, xs = np.nonzero(out[..., 2] > 200)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (130, 90, 170, 130)


def test_procedural_negatives_are_deterministic_and_labelled_procedural():
    a = negatives.procedural_negatives(1, seed=3, size=(160, 90))
    b = negatives.procedural_negatives(1, seed=3, size=(160, 90))
    assert [n for n, _, _ in a] == [f"procedural-{k}-0" for k in negatives.MAKERS]
    assert all(k == "procedural" and im.shape == (90, 160, 3) for _, k, im in a)
    assert all(np.array_equal(x[2], y[2]) for x, y in zip(a, b, strict=True))


def test_false_detections_counts_every_box_at_the_default_threshold(models_root):
    # the rect model always reports its two fixed boxes (0.6 and 0.55) and here no red rectangle
    dark = np.full((96, 128, 3), 30, np.uint8)
    r = false_detections(
        models_root / "rect",
        [("a", "procedural", dark), ("b", "photo", dark)],
        backend="onnx",
        precision=None,
        keep=1,
    )
    assert r["falsePerImage"] == 2.0 and r["maxConfidence"] == 0.6
    assert set(r["byKind"]) == {"photo", "procedural"} and len(r["worst"]) == 1


def test_second_style_shelves_write_yolo_labels_of_products_and_tags(tmp_path):
    out = shelves_plain.write_set(tmp_path / "plain", 2, seed=1, size=(640, 360))
    assert (out / "names.txt").read_text().split() == ["product", "price-tag"]
    for lab in sorted((out / "labels").iterdir()):
        rows = np.array([[float(v) for v in ln.split()] for ln in lab.read_text().splitlines()])
        assert set(rows[:, 0].astype(int)) == {0, 1}
        assert (rows[:, 1:] > 0).all() and (rows[:, 1:] <= 1).all()
    source = (SCRIPTS / "heldout" / "shelves_plain.py").read_text()
    assert "import datagen" not in source and "from datagen" not in source


def test_facade_kinds_are_a_clean_new_class_set_for_models_train(tmp_path):
    from edgecv.training.dataset import check_dataset

    out = facade_kinds.write_set(tmp_path / "kinds", 6, seed=3, size=(640, 360))
    check = check_dataset(out)
    assert check.names == facade_kinds.NAMES and not check.errors, check.report()
    rows = np.array(
        [[float(v) for v in ln.split()] for lab in (out / "labels").iterdir() for ln in lab.read_text().splitlines()]
    )
    assert len(set(rows[:, 0].astype(int))) >= 4  # most kinds appear in six images
    assert (rows[:, 1:] > 0).all() and (rows[:, 1:] <= 1).all()
    assert (rows[:, 3] * 640 > 4).all() and (rows[:, 4] * 360 > 4).all()
    source = (SCRIPTS / "heldout" / "facade_kinds.py").read_text()
    assert "import datagen" not in source and "from datagen" not in source


def _red_folder(folder: Path, names: list[str] | None) -> Path:
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    if names:
        (folder / "names.txt").write_text("\n".join(names) + "\n")
    for i, (x1, y1, x2, y2) in enumerate([BOX, (20, 120, 120, 200)]):
        cv2.imwrite(str(folder / "images" / f"{i}.png"), red_rectangle_image(320, 240, (x1, y1, x2, y2)))
        cx, cy, w, h = (x1 + x2) / 640, (y1 + y2) / 480, (x2 - x1) / 320, (y2 - y1) / 240
        (folder / "labels" / f"{i}.txt").write_text(f"0 {cx} {cy} {w} {h}\n")
    return folder


def test_class_agnostic_groups_map_model_classes_and_drop_the_rest(models_root, tmp_path):
    pytest.importorskip("faster_coco_eval")
    data = _red_folder(tmp_path / "d", ["thing"])
    r = evaluate_grouped(models_root / "rect", data, {"thing": ["red-thing"]}, backend="onnx", precision=None)
    g = r["groups"]["thing"]
    # fixed-thing (class 1) is in no group and dropped; the model's class-0 decoy box (0.55) at (20, 20)
    # is a red-thing: one extra box per image at the 0.25 threshold
    assert (g["recall"], g["detections"], g["precision"], g["extraBoxes"]) == (1.0, 4, 0.5, 1.0)


def test_perturbation_report_has_relative_drops_and_precision(models_root, tmp_path):
    pytest.importorskip("faster_coco_eval")
    data = _red_folder(tmp_path / "d", None)
    r = evaluate_package(
        models_root / "rect", data, backend="onnx", precision=None, variants=["blur", "border-fill"]
    )
    assert r["atThreshold"]["precision"] == round(2 / 6, 4)  # per image: the rectangle + two fixed boxes
    for v in ("blur", "border-fill"):
        assert set(r["robustness"][v]) == {
            "mAP50",
            "mAP50_95",
            "mAP50RelativeDrop",
            "mAP50_95RelativeDrop",
            "precision",
        }
