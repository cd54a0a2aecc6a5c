"""building-inspection-v1: facade components → storey (0 = ground floor), position, counts per type.

Storeys are found from the window rows (docs/results.md): the camera's roll is removed (median slope of
the window rows), rows of windows are clustered, the storey height is the median spacing of adjacent
rows, each row's floor line sits a quarter storey below its windows' bottom edge, the ground line is the
doors' bottom edge (else the lowest row's floor line) and the storey count runs from the ground line to
the roof edge. A component's storey is the band holding its vertical centre, measured from the nearest
row's floor line and clamped to 0..n-1; a drainpipe (roof to ground) is given the middle band.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from edgecv.vision import PipelineInput
from edgecv.vision.common import bounding_boxes, label_of
from edgecv.vision.rows import cluster_1d, group_medians, median, roll_slope

log = logging.getLogger(__name__)

SILL_BELOW_FLOOR = 0.25  # a window's bottom edge sits this share of a storey above its floor line
ROOF_LINE_IN_EDGE = 0.6  # the roof line lies this far down the roof-edge band
FACADE_THIRDS = ("left", "center", "right")


class Storeys:
    """Floor lines in de-rolled image y (y grows downwards)."""

    def __init__(self, ground: float, height: float, count: int, anchors: list[tuple[float, int]]):
        self.ground, self.height, self.count = ground, height, count
        self.anchors = anchors or [(ground, 0)]  # (floor line y, storey index)

    def band(self, y: float) -> int:
        return int(self.bands(np.asarray([y], np.float64))[0])

    def bands(self, y: np.ndarray) -> np.ndarray:
        """``band`` of every value in ``y`` at once: counted from the nearest floor line (the first of
        equally near ones)."""
        lines = np.array([a[0] for a in self.anchors], np.float64)
        ks = np.array([a[1] for a in self.anchors], np.float64)
        nearest = np.abs(lines[None, :] - y[:, None]).argmin(axis=1)
        band = ks[nearest] + np.floor((lines[nearest] - y) / self.height)
        return np.clip(band, 0, self.count - 1).astype(np.int64)


def estimate_storeys(names: list[str], xyxy: np.ndarray, yc: np.ndarray) -> Storeys:
    """Storey geometry from components (de-rolled box centres ``yc``; boxes in ``xyxy``)."""
    names_a = np.array(names, dtype=object)
    win = np.flatnonzero(names_a == "window")
    h = xyxy[:, 3] - xyxy[:, 1]
    half = h / 2
    rows = cluster_1d(yc[win], 0.8 * median(h[win])) if len(win) else np.zeros(0, np.int64)
    k = int(rows.max()) + 1 if len(win) else 0
    centres = group_medians(yc[win], rows, k) if k else np.zeros(0)
    bottoms = group_medians((yc + half)[win], rows, k) if k else centres
    order = np.argsort(centres)
    centres, bottoms = centres[order], bottoms[order]
    doors = np.flatnonzero(names_a == "door")
    roof = np.flatnonzero(names_a == "roof-edge")
    ground = median((yc + half)[doors]) if len(doors) else None
    roof_y = median((yc - half + ROOF_LINE_IN_EDGE * h)[roof]) if len(roof) else None
    if len(centres) >= 2:
        height = median(np.diff(centres))
    elif len(centres) == 1 and ground is not None:
        height = 1.96 * max(1.0, ground - centres[0])
    elif ground is not None and roof_y is not None:
        height = max(1.0, ground - roof_y)
    else:
        height = float(np.max(h)) if len(h) else 1.0
    lines = bottoms + SILL_BELOW_FLOOR * height
    if ground is None:
        ground = float(lines[-1]) if len(lines) else float(np.max(yc + half))
    anchors = [(float(line), int(round((ground - line) / height))) for line in lines]
    if len(doors):
        anchors.append((ground, 0))
    top = roof_y if roof_y is not None else (float(lines[0]) - height if len(lines) else ground - height)
    count = max(1, int(round((ground - top) / height)), max((k for _, k in anchors), default=0) + 1)
    return Storeys(ground, height, count, anchors)


def run(inp: PipelineInput) -> dict:
    det = inp.detections
    width, height = inp.image_size
    names = [label_of(inp.labels, int(c)) for c in det.class_id]
    xyxy = det.xyxy.astype(np.float64)
    xc = (xyxy[:, 0] + xyxy[:, 2]) / 2
    yc = (xyxy[:, 1] + xyxy[:, 3]) / 2
    win = np.array([n == "window" for n in names], bool)
    if win.sum() >= 3:
        rows = cluster_1d(yc[win], 0.8 * median(xyxy[win, 3] - xyxy[win, 1]))
        slope = roll_slope(xc[win], yc[win], rows)
    else:
        slope = 0.0
    yd = yc - slope * (xc - width / 2)  # de-rolled centres
    storeys = estimate_storeys(names, xyxy, yd) if len(det) else Storeys(0.0, 1.0, 0, [])
    left = float(xyxy[:, 0].min()) if len(det) else 0.0
    span = max(1.0, float(xyxy[:, 2].max()) - left) if len(det) else 1.0
    order = np.argsort(-det.confidence, kind="stable")
    half = (xyxy[:, 3] - xyxy[:, 1]) / 2
    storey = storeys.bands(yd)
    low, high = storeys.bands(yd + half - 0.5), storeys.bands(yd - half + 0.5)
    third = np.clip((xc - left) / span * 3, 0, 2).astype(np.int64)
    boxes = bounding_boxes(det.xyxy[order], width, height)
    confidence = np.asarray(det.confidence, np.float64)[order].tolist()
    detections = []
    for i, box, conf in zip(order.tolist(), boxes, confidence, strict=True):
        if names[i] == "drainpipe":  # runs roof to ground: the middle band, spanning every storey
            attrs = {"storey": storeys.count // 2, "storeySpan": [0, storeys.count - 1]}
        else:
            attrs = {"storey": int(storey[i]), "storeySpan": [int(low[i]), int(high[i])]}
        attrs["facadePosition"] = FACADE_THIRDS[third[i]]
        detections.append(
            {"objectName": names[i], "confidence": round(conf, 4), "boundingBox": box, "attributes": attrs}
        )
    counts = Counter(names)
    return {
        "detections": detections,
        "summary": {
            "storeyCount": storeys.count,
            "componentCounts": {n: counts.get(n, 0) for n in inp.labels},
            "totalComponents": len(detections),
        },
    }
