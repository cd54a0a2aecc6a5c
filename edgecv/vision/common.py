"""Helpers every pipeline shares: detections → the seed's detection objects."""

from __future__ import annotations

import numpy as np

from edgecv.vision import PipelineInput


def bounding_box(xyxy: np.ndarray, width: int, height: int) -> dict:
    """Integer ``{x, y, width, height}`` clipped to the image, top-left origin."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    x1, x2 = max(0.0, min(x1, width)), max(0.0, min(x2, width))
    y1, y2 = max(0.0, min(y1, height)), max(0.0, min(y2, height))
    x, y = int(round(x1)), int(round(y1))
    return {"x": x, "y": y, "width": max(0, int(round(x2)) - x), "height": max(0, int(round(y2)) - y)}


def bounding_boxes(xyxy: np.ndarray, width: int, height: int) -> list[dict]:
    """``bounding_box`` for every row of an (n, 4) array at once (same rounding: half to even)."""
    b = np.asarray(xyxy, np.float64).reshape(-1, 4)
    x = np.clip(b[:, [0, 2]], 0.0, float(width))
    y = np.clip(b[:, [1, 3]], 0.0, float(height))
    xi, yi = np.rint(x).astype(np.int64), np.rint(y).astype(np.int64)
    ws = np.maximum(0, xi[:, 1] - xi[:, 0])
    hs = np.maximum(0, yi[:, 1] - yi[:, 0])
    return [
        {"x": a, "y": c, "width": e, "height": f}
        for a, c, e, f in zip(xi[:, 0].tolist(), yi[:, 0].tolist(), ws.tolist(), hs.tolist(), strict=True)
    ]


def label_of(labels: list[str], class_id: int) -> str:
    return labels[class_id] if 0 <= class_id < len(labels) else f"class_{class_id}"


def detection_dicts(inp: PipelineInput) -> list[dict]:
    """One seed-shaped detection per box, highest confidence first, empty ``attributes``."""
    w, h = inp.image_size
    det = inp.detections
    order = np.argsort(-det.confidence, kind="stable")
    return [
        {
            "objectName": label_of(inp.labels, int(det.class_id[i])),
            "confidence": round(float(det.confidence[i]), 4),
            "boundingBox": bounding_box(det.xyxy[i], w, h),
            "attributes": {},
        }
        for i in order
    ]
