"""The one canonical detections type: same-length numpy arrays, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Boxes in original-image pixels (``xyxy``, float), one score and class per box.

    ``data`` holds extra same-length arrays a backend or pipeline attaches (e.g. ``"label"``).
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = (
            np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
            if np.size(self.xyxy)
            else np.zeros((0, 4), np.float32)
        )
        conf = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        cls = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        n = len(xyxy)
        if len(conf) != n:
            raise ValueError(f"confidence: expected {n} values, got {len(conf)}")
        if len(cls) != n:
            raise ValueError(f"class_id: expected {n} values, got {len(cls)}")
        for key, arr in self.data.items():
            if len(arr) != n:
                raise ValueError(f"data[{key!r}]: expected {n} values, got {len(arr)}")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", cls)

    def __len__(self) -> int:
        return len(self.xyxy)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __getitem__(self, index) -> Detections:
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            {k: np.asarray(v)[index] for k, v in self.data.items()},
        )


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes, broadcast over the leading axes: ``box_iou(a, b)`` pairs ``a[i]`` with ``b[i]``,
    ``box_iou(a[:, None], b[None])`` is the (n, m) matrix. A pair with no union (two empty boxes) gives 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ix = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0.0, None)
    iy = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0.0, None)
    inter = ix * iy
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)
