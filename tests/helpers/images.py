"""Test images: JPEG bytes of a red rectangle, and distinct ones per index."""

from __future__ import annotations

import cv2

from helpers.runtime import red_rectangle_image


def jpeg_bytes(width: int = 320, height: int = 240, box=(100, 60, 180, 140), quality: int = 95) -> bytes:
    """A JPEG of a red rectangle at ``box`` (x1, y1, x2, y2) on a dark background."""
    ok, buf = cv2.imencode(
        ".jpg", red_rectangle_image(width, height, box), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return buf.tobytes()


def distinct_jpeg(i: int) -> bytes:
    """Different bytes per ``i`` (the rectangle moves), so each is its own observation."""
    x = 20 + (i * 7) % 200
    y = 20 + (i * 3) % 120
    return jpeg_bytes(box=(x, y, x + 60, y + 50))
