"""Image → network input tensor: letterbox (or plain resize), channel order, scale, layout.

``LetterboxInfo`` records the geometry so the decoder can map boxes back to original pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edgecv.errors import ImageUnreadable
from edgecv.runtime.package import InputSpec


@dataclass(frozen=True)
class LetterboxInfo:
    """Input pixel = original pixel * scale + pad (per axis; both scales equal when letterboxed)."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def to_original(self, xyxy: np.ndarray) -> np.ndarray:
        """Map ``[n, 4]`` input-space boxes back to original-image pixels (not clipped)."""
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, [0, 2]] = (xyxy[:, [0, 2]] - self.pad_x) / self.scale_x
        out[:, [1, 3]] = (xyxy[:, [1, 3]] - self.pad_y) / self.scale_y
        return out

    def for_original(self, image_shape: tuple[int, ...], size: tuple[int, int]) -> LetterboxInfo:
        """This geometry, measured on an image of ``image_shape`` decoded reduced, re-expressed for
        the original image of ``size`` (width, height): boxes then map back to original pixels."""
        h, w = image_shape[:2]
        return LetterboxInfo(self.scale_x * w / size[0], self.scale_y * h / size[1], self.pad_x, self.pad_y)


def letterbox(
    image: np.ndarray, width: int, height: int, pad_value: int = 114
) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize keeping the aspect ratio, pad to ``width``×``height`` centred (as Ultralytics does)."""
    h, w = image.shape[:2]
    r = min(width / w, height / h)
    new_w, new_h = max(1, round(w * r)), max(1, round(h * r))
    if (new_w, new_h) != (w, h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (width - new_w) / 2, (height - new_h) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    bottom, right = height - new_h - top, width - new_w - left
    if top or bottom or left or right:
        color = (pad_value,) * (image.shape[2] if image.ndim == 3 else 1)
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=color)
    return image, LetterboxInfo(new_w / w, new_h / h, float(left), float(top))


def stretch(image: np.ndarray, width: int, height: int) -> tuple[np.ndarray, LetterboxInfo]:
    """Resize to exactly ``width``×``height`` (for models trained without letterbox)."""
    h, w = image.shape[:2]
    if (w, h) != (width, height):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return image, LetterboxInfo(width / w, height / h, 0.0, 0.0)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Accept grey, BGR or BGRA uint8 images (what ``cv2.imdecode`` returns) and give BGR."""
    if image is None or image.ndim not in (2, 3) or image.size == 0:
        raise ImageUnreadable(f"expected an HxW or HxWxC image, got {getattr(image, 'shape', image)!r}")
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.shape[2] != 3:
        raise ImageUnreadable(f"expected 1, 3 or 4 channels, got {image.shape[2]}")
    return image


def fit_to_input(image_bgr: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, LetterboxInfo]:
    """The BGR uint8 image at the network's input size (letterboxed or stretched per ``spec``)."""
    image = as_bgr(image_bgr)
    if spec.letterbox:
        return letterbox(image, spec.width, spec.height, spec.pad_value)
    return stretch(image, spec.width, spec.height)


def to_tensor(image_bgr: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, LetterboxInfo]:
    """A ``[1, 3, H, W]`` (or NHWC) float32 tensor for ``spec`` and the geometry to undo it."""
    image, info = fit_to_input(image_bgr, spec)
    # blobFromImage does the BGR→RGB swap, the scaling and the HWC→NCHW copy in one C++ pass.
    blob = cv2.dnn.blobFromImage(image, scalefactor=1.0 / spec.scale, swapRB=spec.color == "RGB")
    if spec.layout == "NHWC":
        blob = np.ascontiguousarray(blob.transpose(0, 2, 3, 1))
    return blob, info
