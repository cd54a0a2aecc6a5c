"""Price-tag text in the shelf pipeline: which tags are read, where their name line is, and how a
reader's raw text becomes a price. The readers themselves (the shipped price CRNN, PP-OCR) are engines
in ``edgecv.runtime.text``, handed in through ``PipelineInput.engines``.
"""

from __future__ import annotations

import re

import numpy as np

from edgecv.vision import PriceReading, RegionReading

NAME_REGION = (0.0, 0.0, 1.0, 0.3)
_NOT_DIGIT = re.compile(r"\D")
# A tag shorter than this has a name line under ~6 px: PP-OCR cannot read it, and trying costs
# ~5 ms a tag. Such tags are skipped ('' = unreadable).
MIN_NAME_TAG_HEIGHT_PX = 20


def format_price(text: str | None) -> str | None:
    """OCR text → ``"2.49"``, or None when it is not a price (fewer than three digits, or over 9999.99);
    a missed dot is restored before the last two digits."""
    digits = _NOT_DIGIT.sub("", text or "")
    if len(digits) < 3:
        return None
    whole = int(digits[:-2])
    return f"{whole}.{digits[-2:]}" if whole < 10_000 else None


def read_prices(image: np.ndarray, boxes: np.ndarray, reader: PriceReading) -> list[str | None]:
    """The price on each tag box (xyxy), None where nothing readable; one model call for all tags."""
    return [format_price(text) for text in reader.read(image, boxes)]


def read_names(image: np.ndarray, boxes: np.ndarray, reader: RegionReading) -> list[str]:
    """The product-name line at the top of each tag box ('' where unreadable or too small)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    tall = np.flatnonzero(boxes[:, 3] - boxes[:, 1] >= MIN_NAME_TAG_HEIGHT_PX)
    out = [""] * len(boxes)
    if len(tall):
        for i, text in zip(tall.tolist(), reader.read_regions(image, boxes[tall], NAME_REGION), strict=True):
            out[i] = (text or "").strip()
    return out
