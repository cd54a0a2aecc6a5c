"""Image bytes for the upstream: the upload variant of a spooled image, and in-place downscaling.

OpenCV is imported inside the functions: a relay with ``image_policy = none`` and a budget that is
never reached never loads it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def downscale_file(path: Path, factor: float = 0.5) -> tuple[int, int]:
    """Shrink an image in place (same format, each side × ``factor``); ``(bytes_before, bytes_after)``."""
    import cv2

    if not path.exists():
        return 0, 0
    before = path.stat().st_size
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return before, before
    h, w = image.shape[:2]
    small = cv2.resize(
        image, (max(1, int(w * factor)), max(1, int(h * factor))), interpolation=cv2.INTER_AREA
    )
    ok, encoded = cv2.imencode(path.suffix or ".jpg", small)
    if not ok or len(encoded) >= before:
        return before, before
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(encoded.tobytes())
    os.replace(tmp, path)
    return before, len(encoded)


def image_bytes(
    path: Path, variant: str, media_type: str, max_px: int, privacy: Any = None
) -> tuple[bytes | None, str, dict[str, Any] | None]:
    """The bytes to upload for a spooled image: the file itself, or a JPEG thumbnail; None if gone.

    ``privacy`` (an :class:`edgecv.privacy.PrivacyFilter`) runs on the full image first, so a small face
    is found before a thumbnail shrinks it; its report comes back third (None without a filter). It
    raises PrivacyError for an image it cannot check: that image is not uploaded."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, media_type, None
    report = None
    if privacy is not None:
        outgoing = privacy.outgoing(data, media_type)
        data, media_type, report = outgoing.data, outgoing.media_type, outgoing.report
    if variant == "full":
        return data, media_type, report
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return data, media_type, report
    h, w = image.shape[:2]
    scale = min(1.0, max_px / max(h, w))
    if scale < 1.0:
        image = cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return (encoded.tobytes(), "image/jpeg", report) if ok else (data, media_type, report)
