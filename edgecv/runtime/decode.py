"""The one decoder: Ultralytics-style ``[1, 4+nc, N]`` output → ``Detections`` in original pixels.

Pure numpy + OpenCV's batched NMS; no I/O. Every backend's raw output goes through ``decode`` so there
is exactly one place where boxes are interpreted.
"""

from __future__ import annotations

import cv2
import numpy as np

from edgecv.detections import Detections
from edgecv.errors import InferenceError
from edgecv.runtime.preprocess import LetterboxInfo

# Candidates kept for NMS after the confidence filter, as in Ultralytics so results match. OpenCV's NMS
# costs O(candidates × kept): cheap for a dense shelf at conf 0.25, but hundreds of times more for
# thousands of unsuppressed candidates at evaluation settings (docs/performance.md, "Figures behind the code").
MAX_NMS_CANDIDATES = 30000


def predictions(raw: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """The channel-major ``[4+nc, N]`` view of a ``[1, 4+nc, N]`` output.

    A ``[1, N, 4+nc]`` output (some exporters transpose) is accepted when ``num_classes`` makes the
    orientation unambiguous.
    """
    raw = np.asarray(raw)
    if raw.ndim == 2:
        raw = raw[None]
    if raw.ndim != 3 or raw.shape[0] != 1:
        raise InferenceError(f"model output: expected shape [1, 4+nc, N], got {list(raw.shape)}")
    pred = raw[0]
    if num_classes is None:
        if pred.shape[0] < 5:
            raise InferenceError(
                f"model output: expected shape [1, 4+nc, N] with nc >= 1, got {list(raw.shape)}"
            )
        return pred
    channels = 4 + num_classes
    if pred.shape[0] == channels:
        return pred
    if pred.shape[1] == channels:
        return pred.T
    raise InferenceError(
        f"model output: expected shape [1, {channels}, N] for {num_classes} labels, got {list(raw.shape)}"
    )


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    half = boxes[:, 2:4] / 2
    return np.concatenate([boxes[:, :2] - half, boxes[:, :2] + half], axis=1)


def nms(
    xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float, *, agnostic: bool = False
) -> np.ndarray:
    """Indices kept by per-class (or class-agnostic) NMS, highest score first."""
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).astype(np.float64)
    scores = scores.astype(np.float32)
    if agnostic:
        keep = cv2.dnn.NMSBoxes(xywh, scores, 0.0, iou)
    else:
        keep = cv2.dnn.NMSBoxesBatched(xywh, scores, class_ids.astype(np.int32), 0.0, iou)
    return np.asarray(keep, dtype=np.int64).reshape(-1)


def decode(
    raw: np.ndarray,
    info: LetterboxInfo,
    image_shape: tuple[int, ...],
    *,
    conf: float,
    iou: float,
    max_detections: int,
    num_classes: int | None = None,
    agnostic: bool = False,
) -> Detections:
    """Confidence filter → xyxy → NMS (input space) → original pixels, clipped → top ``max_detections``.

    ``image_shape`` is the original image's ``shape`` (``(h, w)`` or ``(h, w, c)``).
    """
    pred = predictions(raw, num_classes)
    class_scores = pred[4:]
    best = class_scores.max(axis=0)
    mask = best > conf
    if not mask.any():
        return Detections.empty()
    scores = best[mask]
    class_ids = class_scores[:, mask].argmax(axis=0)
    boxes = pred[:4, mask].T
    if len(scores) > MAX_NMS_CANDIDATES:
        top = np.argpartition(-scores, MAX_NMS_CANDIDATES)[:MAX_NMS_CANDIDATES]
        boxes, scores, class_ids = boxes[top], scores[top], class_ids[top]
    xyxy = cxcywh_to_xyxy(boxes.astype(np.float32))
    keep = nms(xyxy, scores, class_ids, iou, agnostic=agnostic)[:max_detections]
    xyxy = info.to_original(xyxy[keep])
    h, w = image_shape[:2]
    xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
    xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
    return Detections(xyxy, scores[keep], class_ids[keep])
