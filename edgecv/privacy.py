"""Faces in images that leave the device: found and blurred (or blocked out) just before they leave.

Where images leave: the relay's image uploads (``sync.image_policy`` thumbnail or full) and the local
API's ``GET …/observations/{id}/image`` for clients that are not on this machine. Webhook and sync
*results* carry no pixels. Detection results are always computed on the original image, on the device;
only the bytes that leave are changed. The policy (``[privacy] faces``) is ``blur`` unless the config
says otherwise; ``off`` is the only way an original leaves. An image that cannot be decoded, or the
face model failing, never lets the original through: :class:`PrivacyError` is raised instead.

The face detector (:mod:`edgecv.runtime.faces`) is opened on first use: a device that never sends an
image never loads it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgecv.config import PrivacySettings
from edgecv.errors import EdgecvError, PrivacyError
from edgecv.imageio import decode

log = logging.getLogger(__name__)

MARGIN = 0.2  # each face box grows by this fraction of its size on every side (hair, ears, chin)
BLUR_CELLS = 10  # a blurred face keeps about this many cells across: no features survive
JPEG_QUALITY = 90
PRIVACY_HEADER = "X-Edgecv-Privacy"


@dataclass(frozen=True)
class Outgoing:
    """The bytes that may leave, and what was done to them (``report``: recorded and sent along)."""

    data: bytes
    media_type: str
    report: dict[str, Any]


def privacy_header(report: dict[str, Any]) -> str:
    """The ``X-Edgecv-Privacy`` value sent with an image, e.g. ``faces=blur; found=2; detector=centerface``."""
    return "; ".join(f"{k}={v}" for k, v in sorted(report.items()))


def policy(settings: PrivacySettings) -> dict[str, Any]:
    """What a job's ``result.privacy`` says: how images of this job leave the device."""
    return {"faces": settings.faces}


def blur_faces(image: np.ndarray, boxes: np.ndarray, mode: str = "blur") -> np.ndarray:
    """``image`` with every ``x1, y1, x2, y2`` box (grown by MARGIN) blurred or filled, in place."""
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in boxes[:, :4]:
        mx, my = (x2 - x1) * MARGIN, (y2 - y1) * MARGIN
        a, b = max(0, int(x1 - mx)), max(0, int(y1 - my))
        c, d = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
        if c <= a or d <= b:
            continue
        roi = image[b:d, a:c]
        if mode == "box":
            roi[:] = 128
            continue
        cells = (
            max(1, BLUR_CELLS * (c - a) // max(c - a, d - b)),
            max(1, BLUR_CELLS * (d - b) // max(c - a, d - b)),
        )
        small = cv2.GaussianBlur(cv2.resize(roi, cells, interpolation=cv2.INTER_AREA), (0, 0), 0.8)
        roi[:] = cv2.resize(small, (c - a, d - b), interpolation=cv2.INTER_LINEAR)
    return image


class PrivacyFilter:
    """One per process: decides, detects, blurs and encodes the images that leave."""

    def __init__(self, settings: PrivacySettings, detector: Any = None) -> None:
        self.settings = settings
        self._detector = detector
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.settings.faces != "off"

    def detector(self) -> Any:
        with self._lock:
            if self._detector is None:
                from edgecv.runtime.faces import FaceDetector

                self._detector = FaceDetector(input_px=self.settings.detect_px)
        return self._detector

    def faces(self, image: np.ndarray) -> np.ndarray:
        """Face boxes (``x1, y1, x2, y2, score`` rows) at the configured threshold."""
        return self.detector().detect(image, self.settings.face_threshold)

    def apply(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """``image`` (BGR) with its faces blurred per the policy, and how many were found."""
        if not self.active:
            return image, 0
        boxes = self.faces(image)
        return blur_faces(image, boxes, self.settings.faces), len(boxes)

    def outgoing(self, data: bytes, media_type: str) -> Outgoing:
        """The bytes to send instead of ``data``: the original only with ``faces = "off"``."""
        if not self.active:
            return Outgoing(data, media_type, {"faces": "off"})
        try:
            image = decode(data)
            image, found = self.apply(image)
        except EdgecvError as exc:
            raise PrivacyError(f"image not sent: it could not be checked for faces ({exc})") from exc
        except Exception as exc:  # the model failing must not let an original out
            raise PrivacyError(
                f"image not sent: the face check failed ({type(exc).__name__}: {exc})"
            ) from exc
        ext, out_type = (".png", "image/png") if media_type == "image/png" else (".jpg", "image/jpeg")
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if ext == ".jpg" else []
        ok, encoded = cv2.imencode(ext, image, params)
        if not ok:
            raise PrivacyError("image not sent: the filtered image could not be encoded")
        name = getattr(self._detector, "name", "centerface")
        return Outgoing(
            encoded.tobytes(), out_type, {"faces": self.settings.faces, "found": found, "detector": name}
        )
