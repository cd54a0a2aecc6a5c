"""Large JPEGs are decoded reduced for the detector (libjpeg DCT scaling), boxes stay in original pixels,
pixel-reading pipelines get the full-size image, and images up to REDUCE_ABOVE_PIXELS are unchanged."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from helpers.runtime import red_rectangle_image

from edgecv.imageio import REDUCE_ABOVE_PIXELS, decode, decode_sized
from edgecv.ingest import ingest_bytes
from edgecv.vision import PipelineInput, get_pipeline
from edgecv.work.worker import Worker

BOX = (2100, 1400, 4900, 3500)  # x1, y1, x2, y2 of the red rectangle in the original image


def encode(image: np.ndarray, ext: str = ".jpg") -> bytes:
    return cv2.imencode(ext, image)[1].tobytes()


@pytest.fixture(scope="module")
def large_jpeg() -> bytes:
    data = encode(red_rectangle_image(7000, 5000, BOX))  # 35 MP, under the 50 MP pixel guard
    assert 7000 * 5000 > REDUCE_ABOVE_PIXELS
    return data


def boxes_of(job) -> list[list[int]]:
    """Every detection's box as x1, y1, x2, y2, largest first (the red rectangle)."""
    out = []
    for detection in job.result["detections"]:
        bb = detection["boundingBox"]
        out.append([bb["x"], bb["y"], bb["x"] + bb["width"], bb["y"] + bb["height"]])
    return sorted(out, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


def run_jobs(store, config, images: list[bytes]):
    jobs = [
        ingest_bytes(store, config, data, name=f"{i}.jpg", model="rect").job for i, data in enumerate(images)
    ]
    worker = Worker(store, config)
    while worker.run_once() is not None:
        pass
    return [store.get_job(j.id) for j in jobs], worker


def test_a_large_jpeg_is_decoded_reduced_and_a_png_is_not(large_jpeg):
    decoded = decode_sized(large_jpeg, fit=(128, 96))
    assert decoded.reduced and decoded.size == (7000, 5000)
    assert decoded.image.shape == (625, 875, 3)  # 1/8: still ≥ 2 × the 128×96 input in both axes
    assert decode_sized(large_jpeg).image.shape == (5000, 7000, 3)  # no model input given: full size
    png = encode(np.zeros((5000, 4100, 3), np.uint8), ".png")
    assert decode_sized(png, fit=(128, 96)).image.shape == (5000, 4100, 3)  # no reduced PNG decoder


def test_reduced_decode_keeps_exif_orientation(large_jpeg):
    from test_ingest import _with_exif_orientation

    decoded = decode_sized(_with_exif_orientation(large_jpeg, 6), fit=(128, 96))
    assert decoded.size == (5000, 7000) and decoded.image.shape == (875, 625, 3)


@pytest.mark.parametrize("count", [1, 4], ids=["single", "backlog"])
def test_boxes_from_a_reduced_decode_are_in_original_pixels(store, config, large_jpeg, count):
    images = [large_jpeg]
    for i in range(1, count):  # distinct bytes (identical ones would be one job)
        image = red_rectangle_image(7000, 5000, BOX)
        image[0, :i] = 255
        images.append(encode(image))
    jobs, worker = run_jobs(store, config, images)
    full = worker.detectors.get("rect").detect(decode(large_jpeg))  # the full-size decode, as before
    expected = sorted(full.xyxy.tolist(), key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
    step = 7000 / 128  # one input pixel in original pixels: the rect model's resolution
    for job in jobs:
        assert job.status == "completed"
        got = boxes_of(job)
        assert len(got) == len(expected) == 3
        assert all(abs(g - b) <= step for g, b in zip(got[0], BOX, strict=True)), (got[0], BOX)
        for box, want in zip(got, expected, strict=True):
            assert all(abs(g - w) <= step for g, w in zip(box, want, strict=True)), (box, want)


def test_normal_size_images_give_exactly_the_results_of_a_full_decode(store, config):
    data = encode(red_rectangle_image(4000, 3000, (1000, 700, 2600, 2100)))  # 12 MP: a phone photo
    decoded = decode_sized(data, fit=(128, 96))
    assert not decoded.reduced and np.array_equal(decoded.image, decode(data))
    [job], worker = run_jobs(store, config, [data])
    detector = worker.detectors.get("rect")
    image = decode(data)  # what the worker did before: full decode, detect, pipeline on that image
    before = get_pipeline("generic")(
        PipelineInput(image, detector.detect(image), list(detector.package.labels), options={})
    )
    assert job.result["detections"] == before["detections"]


@pytest.mark.parametrize(
    ("pipeline", "options", "full"),
    [("shelf", {}, True), ("shelf", {"ocr": False}, False), ("damage", {}, True), ("generic", {}, False)],
)
def test_pipelines_that_read_pixels_get_the_full_size_image(
    store, config, large_jpeg, pipeline, options, full
):
    result = ingest_bytes(store, config, large_jpeg, name="big.jpg", model="rect")
    worker = Worker(store, config)
    loaded = worker.load(store.claim_jobs(worker.owner, 60, limit=1)[0])
    assert loaded.image.shape == (625, 875, 3) and loaded.size == (7000, 5000)
    image, size = worker.pipeline_image(loaded, pipeline, options)
    if full:
        assert image.shape == (5000, 7000, 3) and size is None
    else:
        assert image.size == 0 and size == (7000, 5000)
    assert result.observation.width == 7000
