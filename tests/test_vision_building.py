"""Building pipeline on a hand-built facade: storeys from window rows, doors, roof edge."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.detections import Detections
from edgecv.vision import PipelineInput, get_pipeline

LABELS = ["window", "door", "balcony", "drainpipe", "ac-unit", "roof-edge", "signage"]


def facade(n: int, roll: float = 0.0, ground: float = 650.0, top: float = 90.0):
    sh = (ground - top) / n
    boxes, cls, storeys = [], [], []
    for k in range(n):
        fl = ground - k * sh
        for c in range(5):
            x = 100 + c * 220
            if k == 0 and c == 2:
                boxes.append([x, fl - 0.78 * sh, x + 90, fl])
                cls.append(1)
            else:
                boxes.append([x, fl - 0.25 * sh - 0.5 * sh, x + 80, fl - 0.25 * sh + 3])
                cls.append(0)
            storeys.append(k)
        if k > 0:
            boxes.append([320, fl - 0.32 * sh, 500, fl + 0.04 * sh])
            cls.append(2)
            storeys.append(k)
    boxes.append([60, top - 8, 1200, top + 5])
    cls.append(5)
    storeys.append(n - 1)
    boxes.append([1180, top, 1190, ground])
    cls.append(3)
    storeys.append(n // 2)
    xyxy = np.array(boxes, np.float32)
    xc = (xyxy[:, 0] + xyxy[:, 2]) / 2
    xyxy[:, [1, 3]] += (roll * (xc - 640))[:, None]
    return Detections(xyxy, np.full(len(xyxy), 0.9, np.float32), np.array(cls)), storeys


@pytest.mark.parametrize(("n", "roll"), [(1, 0.0), (3, 0.0), (5, 0.02), (8, -0.015)])
def test_storeys(n, roll):
    det, storeys = facade(n, roll)
    res = get_pipeline("building")(PipelineInput(np.zeros((720, 1280, 3), np.uint8), det, LABELS))
    assert res["summary"]["storeyCount"] == n
    order = np.argsort(-det.confidence, kind="stable")
    assert [d["attributes"]["storey"] for d in res["detections"]] == [storeys[i] for i in order]
    assert res["summary"]["componentCounts"]["door"] == 1
    assert res["summary"]["totalComponents"] == len(det)
    assert {d["attributes"]["facadePosition"] for d in res["detections"]} == {"left", "center", "right"}


def test_no_components():
    res = get_pipeline("building")(PipelineInput(np.zeros((10, 10, 3), np.uint8), Detections.empty(), LABELS))
    assert res["detections"] == [] and res["summary"]["storeyCount"] == 0
