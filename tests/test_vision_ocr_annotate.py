"""Price-tag OCR with the model inside the rapidocr wheel, and the annotated picture."""

from __future__ import annotations

import numpy as np
import pytest

from edgecv.annotate import draw_job
from edgecv.vision import ocr


@pytest.mark.parametrize(
    ("text", "expected"), [("2.49", "2.49"), ("249", "2.49"), ("0,89", "0.89"), ("9", None)]
)
def test_format_price(text, expected):
    assert ocr.format_price(text) == expected


def test_reads_a_rendered_price_tag():
    pytest.importorskip("rapidocr")
    import cv2

    tags = []
    for price in ("2.49", "1.05"):
        tag = np.full((60, 138, 3), 255, np.uint8)
        cv2.putText(tag, "FIZZO COLA", (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (20, 20, 20), 1)
        (tw, _), _ = cv2.getTextSize(price, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 3)
        cv2.putText(
            tag, price, (134 - tw, 50), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 3
        )  # right-aligned
        tags.append(tag)
    image = np.full((100, 400, 3), 128, np.uint8)
    image[20:80, 10:148] = tags[0]
    image[20:80, 200:338] = tags[1]
    assert ocr.read_prices(image, np.array([[10, 20, 148, 80], [200, 20, 338, 80]])) == ["2.49", "1.05"]


def test_model_comes_from_the_wheel():
    pytest.importorskip("rapidocr")
    path = ocr.model_path()
    assert path.is_file() and path.parent.parent.name == "rapidocr"


def test_draw_job():
    image = np.zeros((200, 300, 3), np.uint8)
    job = {
        "status": "completed",
        "result": {
            "detections": [
                {
                    "objectName": "Cola",
                    "confidence": 0.9,
                    "boundingBox": {"x": 10, "y": 40, "width": 50, "height": 100},
                    "attributes": {"facings": 2, "shelfPosition": "top", "priceTag": "2.49"},
                }
            ],
            "summary": {"totalProducts": 1, "outOfStock": []},
        },
    }
    out = draw_job(image, job)
    assert out.shape == image.shape and out.any() and not image.any()
    failed = draw_job(image, {"status": "failed", "error": {"code": "image_unreadable", "message": "x"}})
    assert failed.any()
