"""Legible annotated pictures: labels inside the image, never overlapping each other or the banner, readable
text colours, sizes that scale with the image."""

from __future__ import annotations

import colorsys
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from edgecv.annotate import (
    BLACK,
    WHITE,
    banner_rect,
    colour_for,
    contrast_ratio,
    draw_job,
    group_boxes,
    label_candidates,
    layout,
    overlaps,
    place_labels,
    style_for,
    text_colour,
    wrap,
)

MODELS = Path(__file__).resolve().parents[1] / "models"
NAMES = [
    "Fizzo Cola 330ml", "Brizzl Lemon 500ml", "Zesto Orange 1L", "Aquara Sparkling 500ml", "Pastaro Spaghetti 500g",
    "Goldgrain Muesli 500g", "Teaberry Green Tea 20pk", "Nordmilk Whole 1L", "Crunchos Paprika 150g", "Koffi Latte 250ml",
]  # fmt: skip


def dense_shelf(width: int, height: int, rows: int = 5, per_row: int = 20) -> dict:
    """``rows`` x ``per_row`` products edge to edge over the whole image, no two neighbours alike (nothing groups),
    the top row touching the top edge and the last column the right edge."""
    bw, bh = width // per_row, height // rows
    dets = [
        {
            "objectName": NAMES[(r * 3 + c) % len(NAMES)],
            "boundingBox": {"x": c * bw, "y": r * bh, "width": bw, "height": bh},
            "attributes": {"facings": 1 + c % 4, "shelfPosition": "middle", "priceTag": f"{1 + c % 7}.49"},
        }
        for r in range(rows)
        for c in range(per_row)
    ]
    summary = {
        "totalProducts": len(dets),
        "uniqueSKUs": len(NAMES),
        "complianceScore": 0.91,
        "outOfStock": [],
    }
    return {"status": "completed", "result": {"detections": dets, "summary": summary}}


def inside(rect, width: int, height: int) -> bool:
    return 0 <= rect[0] < rect[2] <= width and 0 <= rect[1] < rect[3] <= height


@pytest.mark.parametrize(("width", "height", "at_least"), [(1280, 720, 30), (3840, 2160, 30), (300, 200, 10)])
def test_dense_shelf_labels_stay_inside_apart_and_off_the_banner(width, height, at_least):
    job = dense_shelf(width, height)
    lay = layout(job, width, height)
    labels = [rect for _, rect, _ in lay.labels]
    assert lay.banner and len(labels) >= at_least  # a hundred products: a good share of them labelled
    assert all(inside(r, width, height) for r in labels + [rect for _, rect in lay.banner])
    assert not any(overlaps(a, b) for a, b in combinations(labels, 2))
    assert not any(overlaps(label, rect) for label in labels for _, rect in lay.banner)


def test_label_candidates_are_clamped_inside_and_flip_below_at_the_top():
    image = (640, 360)
    for box in [
        (0, 0, 30, 30),
        (620, 0, 640, 40),
        (600, 330, 640, 360),
        (-20, -20, 700, 400),
        (300, 2, 340, 60),
    ]:
        candidates = label_candidates(box, (120, 18), image)
        assert candidates and all(inside(r, *image) for r in candidates)
    top = label_candidates((300, 2, 340, 60), (120, 18), image)[0]
    assert top[1] == 0 and top[3] > 2  # no room above: on the box, not cut off
    right = label_candidates((600, 100, 640, 160), (120, 18), image)[0]
    assert right[2] == 640  # pushed left off the right edge
    assert label_candidates((0, 0, 10, 10), (700, 18), image) == []  # wider than the image: nowhere


def test_place_labels_falls_back_to_the_short_text_then_to_none():
    image = (200, 100)
    boxes = [(0, 20, 100, 80), (100, 20, 200, 80), (50, 20, 150, 80)]
    variants = [[(200, 20), (60, 20)]] * 3
    placed = place_labels(boxes, variants, image, blocked=[(0, 0, 200, 20)])
    assert placed[0] is not None and placed[0][0] == 0  # full text fits below the band
    assert placed[1] is not None
    rects = [p[1] for p in placed if p is not None]
    assert not any(overlaps(a, b) for a, b in combinations(rects, 2))
    assert not any(overlaps(r, (0, 0, 200, 20)) for r in rects)
    crowded = place_labels([(0, 0, 10, 10)], [[(50, 50)]], (50, 50), blocked=[(0, 0, 50, 50)])
    assert crowded == [None]


def test_banner_goes_to_the_corner_that_hides_no_box():
    image = (1280, 720)
    assert banner_rect((400, 30), image, []) == (0, 0, 400, 30)
    assert banner_rect((400, 30), image, [(10, 5, 300, 200)]) == (880, 0, 1280, 30)
    everywhere_but_bottom_right = [(0, 0, 1280, 100), (0, 600, 800, 720)]
    assert banner_rect((400, 30), image, everywhere_but_bottom_right) == (880, 690, 1280, 720)
    assert banner_rect((2000, 30), image, []) == (0, 0, 1280, 30)  # never wider than the image


def test_banner_wraps_to_the_image_width():
    width_of = len
    assert wrap(["ab: 1", "cd: 2", "ef: 3"], 12, width_of) == ["ab: 1  cd: 2", "ef: 3"]
    assert wrap(["a-very-long-part"], 5, width_of) == ["a-very-long-part"]
    failed = {"status": "failed", "error": {"code": "image_unreadable", "message": "word " * 60}}
    lay = layout(failed, 640, 360)
    assert len(lay.banner) > 1 and all(inside(rect, 640, 360) for _, rect in lay.banner)


def palette() -> list[tuple[int, int, int]]:
    """Every colour ``colour_for`` can return (one per hue degree) and those of the shipped models' labels."""
    hues = [colorsys.hsv_to_rgb(h / 360, 0.85, 0.95) for h in range(360)]
    colours = [(int(b * 255), int(g * 255), int(r * 255)) for r, g, b in hues]
    for manifest in sorted(MODELS.glob("*/model.json")):
        colours += [colour_for(name) for name in json.loads(manifest.read_text())["labels"]]
    return colours


def test_label_text_contrasts_with_every_palette_colour():
    assert contrast_ratio(WHITE, BLACK) == pytest.approx(21.0)
    assert contrast_ratio(BLACK, BLACK) == pytest.approx(1.0)
    colours = palette()
    assert len(colours) > 360  # the shipped models were found
    assert all(contrast_ratio(c, text_colour(c)) >= 4.5 for c in colours)
    dark_blue = (242, 36, 50)  # BGR; "spalling": black on it is 2.7:1
    assert text_colour(dark_blue) == WHITE and contrast_ratio(dark_blue, BLACK) < 4.5
    assert text_colour((36, 242, 238)) == BLACK  # yellow


def test_sizes_scale_with_the_image():
    hd, uhd = style_for(1280, 720), style_for(3840, 2160)
    assert uhd.label_scale == pytest.approx(3 * hd.label_scale)
    assert uhd.banner_scale == pytest.approx(3 * hd.banner_scale)
    assert uhd.thickness == 3 * hd.thickness and uhd.line == 3 * hd.line
    assert style_for(720, 1280) == hd  # portrait: the shorter side decides
    assert style_for(100, 80).label_scale >= 0.35
    one = {
        "detections": [
            {"objectName": "crack", "boundingBox": {"x": 100, "y": 100, "width": 50, "height": 50}}
        ]
    }
    (_, small, _), (_, big, _) = layout(one, 1280, 720).labels[0], layout(one, 3840, 2160).labels[0]
    assert (big[3] - big[1]) == pytest.approx(3 * (small[3] - small[1]), rel=0.15)


def test_facings_of_one_product_share_one_label():
    boxes = [
        (0, 0, 30, 60),
        (32, 0, 62, 60),
        (64, 2, 94, 60),
        (200, 0, 230, 60),
        (232, 0, 262, 60),
        (0, 100, 30, 160),
    ]
    texts = ["cola", "cola", "cola", "cola", "tea", "cola"]
    assert group_boxes(boxes, texts) == [[0, 1, 2], [3], [4], [5]]


def test_draw_job_draws_the_layout():
    image = np.zeros((360, 640, 3), np.uint8)
    job = dense_shelf(640, 360, rows=2, per_row=4)
    out = draw_job(image, job)
    assert out.shape == image.shape and not image.any()
    lay = layout(job, 640, 360)
    for text, (x0, y0, x1, y1), colour in lay.labels:
        patch = out[y0:y1, x0:x1].reshape(-1, 3)
        assert (patch == colour).all(axis=1).mean() > 0.5, text  # the label's background
        assert (patch == text_colour(colour)).all(axis=1).any(), text  # and its text
    for _, (x0, y0, x1, y1) in lay.banner:
        assert (out[y0:y1, x0:x1] == 255).all(axis=2).mean() > 0.5
