"""Shelf pipeline on hand-built detections: rows, runs, positions, tag association, planogram scoring."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.detections import Detections
from edgecv.vision import PipelineInput, get_pipeline
from edgecv.vision.planogram import Slot, parse, score
from edgecv.vision.rows import layout, shelf_position

LABELS = ["Cola", "Lemon", "Water", "price-tag"]
TAG = 3


def shelf_boxes(rows, board_ys, roll=0.0):
    """rows: list of lists of (label, facings) or ('gap', width) items, left to right, per row."""
    boxes, classes = [], []
    for items, board in zip(rows, board_ys, strict=True):
        x = 20.0
        for label, n in items:
            tag_x = x + 2
            if label == "gap":
                boxes.append([tag_x, board + 3, tag_x + 40, board + 20])
                classes.append(TAG)
                x += n
                continue
            boxes.append([tag_x, board + 3, tag_x + 40, board + 20])
            classes.append(TAG)
            for _ in range(n):
                boxes.append([x, board - 100, x + 50, board])
                classes.append(LABELS.index(label))
                x += 52
            x += 10
    xyxy = np.array(boxes, np.float32)
    xc = (xyxy[:, 0] + xyxy[:, 2]) / 2
    xyxy[:, [1, 3]] += (roll * xc)[:, None]
    return Detections(xyxy, np.full(len(xyxy), 0.9, np.float32), np.array(classes))


ROWS = [
    [("Cola", 3), ("Lemon", 2), ("Water", 1)],
    [("Water", 4), ("gap", 80), ("Cola", 2)],
    [("Lemon", 5)],
]
BOARDS = [130.0, 260.0, 390.0]


def run_shelf(det, metadata=None, options=None):
    image = np.zeros((420, 800, 3), np.uint8)
    return get_pipeline("shelf")(
        PipelineInput(image, det, LABELS, metadata or {}, {"ocr": False, **(options or {})})
    )


@pytest.mark.parametrize("roll", [0.0, 0.03, -0.03])
def test_rows_runs_and_tags(roll):
    det = shelf_boxes(ROWS, BOARDS, roll)
    is_tag = det.class_id == TAG
    shelf = layout(det.xyxy[~is_tag], det.class_id[~is_tag], det.xyxy[is_tag])
    assert shelf.row_count == 3
    assert [(r.row, LABELS[r.label], r.facings) for r in shelf.runs] == [
        (0, "Cola", 3), (0, "Lemon", 2), (0, "Water", 1), (1, "Water", 4), (1, "Cola", 2), (2, "Lemon", 5),
    ]  # fmt: skip
    assert all(r.tag is not None for r in shelf.runs)
    assert len(shelf.empty_tags) == 1  # the gap's tag


def test_result_shape_and_attributes():
    res = run_shelf(shelf_boxes(ROWS, BOARDS))
    assert len(res["detections"]) == 17
    first = res["detections"][0]
    assert set(first) == {"objectName", "confidence", "boundingBox", "attributes"}
    assert first["attributes"] == {"facings": 3, "shelfPosition": "top", "priceTag": None}
    positions = {d["attributes"]["shelfPosition"] for d in res["detections"]}
    assert positions == {"top", "eye-level", "bottom"}
    s = res["summary"]
    assert (s["totalProducts"], s["uniqueSKUs"], s["shelfRows"], s["emptyTagSlots"]) == (17, 3, 3, 1)
    assert s["complianceBasis"] == "priceTags" and s["complianceScore"] == round(6 / 7, 4)


def test_planogram_scoring_from_sidecar():
    plan = [
        {"row": 0, "items": [{"sku": "Cola", "facings": 3}, {"sku": "Lemon", "facings": 3}]},
        {"row": 1, "items": [{"sku": "Water", "facings": 4}, {"sku": "Fanta", "facings": 2}]},
        {"row": 2, "items": [{"sku": "Lemon", "facings": 5}]},
    ]
    res = run_shelf(shelf_boxes(ROWS, BOARDS), metadata={"planogram": plan})
    assert res["summary"]["outOfStock"] == ["Fanta"]
    assert res["summary"]["complianceScore"] == round((3 + 2 + 4 + 0 + 5) / 17, 4)
    assert res["summary"]["complianceBasis"] == "planogram"


def test_planogram_rows_matched_by_overlap_when_counts_differ():
    from collections import Counter

    slots = [Slot(0, "A", 2), Slot(1, "B", 2), Slot(2, "C", 1)]
    value, out = score(slots, [Counter({"B": 2}), Counter({"C": 1})])
    assert value == 0.6 and out == ["A"]


def test_planogram_parse_errors():
    with pytest.raises(Exception, match="planogram"):
        parse("nope")
    assert parse({"rows": [{"row": 1, "items": [{"sku": "X"}]}]}) == [Slot(1, "X", 1)]


@pytest.mark.parametrize(
    ("rows", "expected"),
    [(1, ["eye-level"]), (2, ["eye-level", "bottom"]), (3, ["top", "eye-level", "bottom"]),
     (5, ["top", "eye-level", "middle", "middle", "bottom"])],
)  # fmt: skip
def test_shelf_position_mapping(rows, expected):
    assert [shelf_position(r, rows) for r in range(rows)] == expected


def test_empty_detections():
    res = run_shelf(Detections.empty())
    assert res["detections"] == []
    assert res["summary"]["totalProducts"] == 0 and res["summary"]["complianceScore"] == 1.0


def test_vectorised_helpers_match_the_plain_definitions():
    """roll_slope / bounding_boxes / median are vectorised or trimmed; they must agree with the plain
    definitions."""
    from edgecv.vision.common import bounding_box, bounding_boxes
    from edgecv.vision.rows import median, roll_slope

    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 60):
        values = rng.normal(0, 50, n)
        assert median(values) == float(np.median(values))
    xc = rng.uniform(0, 1000, 60)
    groups = rng.integers(0, 5, 60)
    groups[:2] = 7  # a group too small to fit
    y = 100 * groups + 0.02 * xc + rng.normal(0, 1, 60)
    slopes = []
    for g in np.unique(groups):
        i = groups == g
        if i.sum() >= 3 and np.ptp(xc[i]) >= 1:
            slopes.append(np.polyfit(xc[i], y[i], 1)[0])
    assert roll_slope(xc, y, groups) == pytest.approx(float(np.median(slopes)), abs=1e-12)
    assert roll_slope(xc[:2], y[:2], groups[:2]) == 0.0
    assert roll_slope(np.zeros(0), np.zeros(0), np.zeros(0, int)) == 0.0

    boxes = rng.uniform(-50, 700, (40, 4)).astype(np.float32)
    boxes[0] = [10.5, 11.5, 12.5, 13.5]  # halves round to even, as round() does
    assert bounding_boxes(boxes, 640, 480) == [bounding_box(b, 640, 480) for b in boxes]
    assert bounding_boxes(np.zeros((0, 4)), 640, 480) == []


class _Loaded:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


class _FakePrices:
    def read(self, image, boxes):
        return [f"{100 + i}" for i in range(len(boxes))]  # a raw reading per tag: "100" → "1.00"


class _FakeText:
    def read_regions(self, image, boxes, region, charset=None):
        return [" fanta "] * len(boxes)


class _NoCatalog:
    threshold = 0.8

    def get(self):
        return None  # a catalogue with no SKU: the detector's labels name the products


class _Engines:
    prices = _Loaded(_FakePrices())
    text = _Loaded(_FakeText())
    catalog = _Loaded(_NoCatalog())


def test_prices_and_tag_names_come_from_the_engines_it_is_given(caplog):
    det = shelf_boxes(ROWS, BOARDS)
    # twice the size (tags 34 px tall: their name lines are read), and a label "Fanta" before the tags'
    det = Detections(det.xyxy * 2, det.confidence, np.where(det.class_id == TAG, 4, det.class_id))
    image = np.zeros((840, 1600, 3), np.uint8)
    inp = PipelineInput(image, det, [*LABELS[:3], "Fanta", "price-tag"])
    res = get_pipeline("shelf")(PipelineInput(**{**vars(inp), "engines": _Engines()}))
    assert {d["attributes"]["priceTag"] for d in res["detections"]} == {f"1.0{i}" for i in range(6)}
    no_names = get_pipeline("shelf")(PipelineInput(**{**vars(inp), "engines": _Engines()}))
    assert no_names["summary"]["outOfStock"] == []  # names are read only with read_tag_names
    named = PipelineInput(**{**vars(inp), "engines": _Engines(), "options": {"read_tag_names": True}})
    assert get_pipeline("shelf")(named)["summary"]["outOfStock"] == ["Fanta"]
    # without engines the prices are not read, and the log says why
    bare = get_pipeline("shelf")(inp)
    assert {d["attributes"]["priceTag"] for d in bare["detections"]} == {None}
    assert "no text engines" in caplog.text


def test_generic_product_class_is_unknown_not_a_sku():
    """A detector with a generic ``product`` class (packs it cannot name): without a catalogue those boxes
    keep the name, are counted in ``unknownProducts`` and not in ``uniqueSKUs``."""
    labels = ["Cola", "Lemon", "product", "price-tag"]
    det = shelf_boxes([[("Cola", 2), ("Water", 3)]], [130.0])  # "Water" is index 2: "product" here
    res = get_pipeline("shelf")(PipelineInput(np.zeros((420, 800, 3), np.uint8), det, labels, {}, {"ocr": False}))
    names = [d["objectName"] for d in res["detections"]]
    assert names.count("product") == 3 and names.count("Cola") == 2
    s = res["summary"]
    assert (s["totalProducts"], s["uniqueSKUs"], s["unknownProducts"]) == (5, 1, 3)
    # a detector without that class: no unknownProducts field (the result keeps its old shape)
    assert "unknownProducts" not in run_shelf(shelf_boxes(ROWS, BOARDS))["summary"]
