"""Damage pipeline: severity rules, crack measurement on drawn strokes, condition grade."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgecv.detections import Detections
from edgecv.vision import PipelineInput, get_pipeline
from edgecv.vision.damage import (
    _thin,
    area_severity,
    black_hat,
    condition_grade,
    crack_measure,
    crack_severity,
)

LABELS = ["crack", "spalling", "efflorescence", "rust-stain", "moisture-stain", "exposed-rebar"]


def test_rules():
    assert crack_severity(100, 1, 1280, 720) == "minor"
    assert crack_severity(100, 3, 1280, 720) == "moderate"
    assert crack_severity(900, 1, 1280, 720) == "severe"
    assert crack_severity(100, 4, 640, 360) == "severe"  # thresholds scale with the width
    assert area_severity("spalling", 0.005) == "minor"
    assert area_severity("moisture-stain", 0.05) == "moderate"
    assert area_severity("exposed-rebar", 0.0001) == "severe"
    assert condition_grade([], 0) == 1
    assert condition_grade(["minor"], 0.5) == 2
    assert condition_grade(["minor", "moderate"], 0) == 3
    assert condition_grade(["severe"], 0.1) == 4
    assert condition_grade(["severe"], 0.2) == 5
    assert condition_grade(["severe", "severe"], 0) == 5


@pytest.mark.parametrize("thickness", [2, 6, 12])
def test_crack_measure_on_a_drawn_stroke(thickness):
    gray = np.full((400, 800), 160, np.uint8)
    cv2.line(gray, (100, 200), (700, 200), 40, thickness)
    length, width, _ = crack_measure(gray, (95, 200 - thickness, 705, 201 + thickness))
    assert 540 <= length <= 640
    assert abs(width - thickness) <= 3


@pytest.mark.parametrize("angle", [0, 15, 30, 45, 60, 80])
@pytest.mark.parametrize("thickness", [1, 6, 12])
def test_crack_length_does_not_depend_on_the_angle(angle, thickness):
    # a thick stroke near 30 degrees once read 2.6x too long (the thinning left a staircase)
    gray = np.full((700, 700), 160, np.uint8)
    a = np.radians(angle)
    end = (int(50 + 500 * np.cos(a)), int(50 + 500 * np.sin(a)))
    cv2.line(gray, (50, 50), end, 40, thickness, cv2.LINE_AA)
    box = (45 - thickness, 45 - thickness, end[0] + 5 + thickness, end[1] + 5 + thickness)
    length, width, _ = crack_measure(gray, box)
    assert 460 <= length <= 540
    assert abs(width - thickness) <= 3


def _guo_hall_reference(mask: np.ndarray) -> np.ndarray:
    """Guo–Hall thinning written out in numpy boolean algebra (what shipped until 2026-12-01)."""
    img = np.pad(mask.astype(bool), 1)
    while True:
        changed = False
        for step in (0, 1):
            core = img[1:-1, 1:-1]
            x = [
                img[1:-1, 2:], img[:-2, 2:], img[:-2, 1:-1], img[:-2, :-2],
                img[1:-1, :-2], img[2:, :-2], img[2:, 1:-1], img[2:, 2:],
            ]  # fmt: skip  # E NE N NW W SW S SE
            ring = x + [x[0]]
            crossings = sum(
                (~ring[2 * i] & (ring[2 * i + 1] | ring[2 * i + 2])).astype(np.int8) for i in range(4)
            )
            n1 = sum((ring[2 * k] | ring[2 * k + 1]).astype(np.int8) for k in range(4))
            n2 = sum((ring[2 * k + 1] | ring[2 * k + 2]).astype(np.int8) for k in range(4))
            n = np.minimum(n1, n2)
            side = (x[1] | x[2] | ~x[7]) & x[0] if step == 0 else (x[5] | x[6] | ~x[3]) & x[4]
            rm = core & (crossings == 1) & (n >= 2) & (n <= 3) & ~side
            if rm.any():
                core[rm] = False
                changed = True
        if not changed:
            return img[1:-1, 1:-1].astype(np.uint8)


@pytest.mark.parametrize("size", [15, 17, 23, 31, 45, 93])  # 93: a 4K photo's kernel
def test_black_hat_matches_opencvs_elliptical_kernel(size):
    rng = np.random.default_rng(size)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    for k in range(12):
        h, w = (int(v) for v in rng.integers(3, 160, 2))
        img = rng.integers(0, 256, (h, w), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (5, 5), 0) if k % 2 else img
        assert np.array_equal(black_hat(img, size), cv2.morphologyEx(img, cv2.MORPH_BLACKHAT, kernel))


def test_thinning_matches_the_guo_hall_rule_pixel_for_pixel():
    rng = np.random.default_rng(7)
    masks = [np.zeros((5, 9), np.uint8), np.ones((6, 6), np.uint8)]
    for k in range(120):
        h, w = (int(v) for v in rng.integers(3, 60, 2))
        m = (rng.random((h, w)) < rng.uniform(0.05, 0.9)).astype(np.uint8)
        masks.append(cv2.dilate(m, np.ones((3, 3), np.uint8)) if k % 2 else m)
    stroke = np.zeros((120, 300), np.uint8)
    cv2.line(stroke, (5, 10), (290, 110), 1, 9)
    cv2.line(stroke, (5, 110), (200, 5), 1, 4)
    masks.append(stroke)
    for m in masks:
        assert np.array_equal(_thin(m), _guo_hall_reference(m))
    assert np.array_equal(_thin(stroke * 255), _thin(stroke))  # any non-zero value is foreground


def test_grit_in_the_box_is_not_crack_length():
    rng = np.random.default_rng(0)
    gray = np.full((400, 800), 160, np.uint8)
    cv2.line(gray, (100, 200), (700, 200), 40, 2)
    for x, y in rng.integers((100, 100), (700, 300), size=(150, 2)):
        cv2.circle(gray, (int(x), int(y)), 2, 60, -1)  # dark specks, 5 px across
    length, _, _ = crack_measure(gray, (95, 95, 705, 305))
    assert 540 <= length <= 660


def test_package_fill_calibration_changes_the_area():
    image = np.full((720, 1280, 3), 160, np.uint8)
    det = Detections(np.array([[100, 100, 300, 300]], np.float32), np.array([0.9], np.float32), np.array([3]))
    default = get_pipeline("damage")(PipelineInput(image, det, LABELS))
    ratio = default["detections"][0]["attributes"]["areaRatio"]
    assert ratio == pytest.approx(0.71 * 200 * 200 / (1280 * 720), abs=1e-5)
    assert default["detections"][0]["attributes"]["severity"] == "moderate"
    fitted = get_pipeline("damage")(PipelineInput(image, det, LABELS, {}, {"fill": {"rust-stain": 0.4}}))
    assert fitted["detections"][0]["attributes"]["areaRatio"] == pytest.approx(ratio * 0.4 / 0.71, abs=1e-5)
    assert fitted["detections"][0]["attributes"]["severity"] == "minor"


def test_one_long_crack_found_in_pieces_is_one_crack():
    image = np.full((720, 1280, 3), 160, np.uint8)
    cv2.line(image, (100, 100), (1000, 600), (40, 40, 40), 3)
    det = Detections(
        np.array(
            [[90, 90, 700, 480], [400, 260, 1010, 610], [95, 95, 300, 220], [1100, 600, 1200, 700]],
            np.float32,
        ),
        np.array([0.8, 0.7, 0.4, 0.9], np.float32),
        np.array([0, 0, 0, 0]),
    )
    res = get_pipeline("damage")(PipelineInput(image, det, LABELS))
    cracks = sorted((d["boundingBox"]["x"], d) for d in res["detections"])
    assert len(cracks) == 2  # the three overlapping pieces joined; the separate box stays
    whole = cracks[0][1]
    assert whole["boundingBox"] == {"x": 90, "y": 90, "width": 920, "height": 520}
    assert whole["confidence"] == 0.8
    assert 950 <= whole["attributes"]["lengthPx"] <= 1110  # the drawn line is 1030 px


def test_result_and_grade():
    image = np.full((720, 1280, 3), 160, np.uint8)
    cv2.line(image, (200, 300), (1100, 320), (40, 40, 40), 10)
    det = Detections(
        np.array([[195, 290, 1105, 330], [100, 500, 300, 700], [150, 550, 200, 650]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        np.array([0, 1, 5]),
    )
    res = get_pipeline("damage")(PipelineInput(image, det, LABELS))
    crack = res["detections"][0]["attributes"]
    assert crack["damageType"] == "crack" and crack["severity"] == "severe"
    assert crack["maxWidthPx"] >= 8 and 800 <= crack["lengthPx"] <= 1000
    s = res["summary"]
    assert s["worstSeverity"] == "severe" and s["conditionGrade"] == 5 and s["conditionLabel"] == "critical"
    assert s["damageCounts"] == {"crack": 1, "exposed-rebar": 1, "spalling": 1}


def test_no_damage_is_good():
    res = get_pipeline("damage")(PipelineInput(np.zeros((100, 100, 3), np.uint8), Detections.empty(), LABELS))
    assert res["summary"]["conditionGrade"] == 1 and res["summary"]["worstSeverity"] is None
