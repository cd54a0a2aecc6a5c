"""Generic result: one entry per detection, summary counts per label."""

from __future__ import annotations

from collections import Counter

from edgecv.vision import PipelineInput
from edgecv.vision.common import detection_dicts


def run(inp: PipelineInput) -> dict:
    detections = detection_dicts(inp)
    counts = Counter(d["objectName"] for d in detections)
    return {
        "detections": detections,
        "summary": {"totalDetections": len(detections), "countsByLabel": dict(sorted(counts.items()))},
    }
