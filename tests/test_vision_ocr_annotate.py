"""Price-tag OCR (the shipped price reader; PP-OCR from the rapidocr wheel as fallback), the text engines
that carry them, and the annotated picture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecv.annotate import draw_job
from edgecv.config import Config, load_config
from edgecv.detections import box_iou
from edgecv.errors import ConfigError, PipelineError
from edgecv.runtime import text
from edgecv.runtime.engines import Engines
from edgecv.threads import lane_slots
from edgecv.vision import ocr

ENGINES = Engines.from_config(Config())  # loaded on first use, shared by the tests below


def read_prices(image, boxes):
    return ocr.read_prices(image, boxes, ENGINES.prices.get())


@pytest.mark.parametrize(
    ("raw", "expected"), [("2.49", "2.49"), ("249", "2.49"), ("0,89", "0.89"), ("9", None)]
)
def test_format_price(raw, expected):
    assert ocr.format_price(raw) == expected


SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _generator_tags(prices: list[str], height: int) -> tuple[np.ndarray, np.ndarray]:
    """Tags drawn by the shelf generator's own ``tag_image``, resized as it does, on a grey image."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    shelves = pytest.importorskip("datagen.shelves")
    w = int(round(height * 2.3))
    image = np.full((height * 3, (w + 20) * len(prices) + 20, 3), 90, np.uint8)
    boxes = []
    for i, price in enumerate(prices):
        tag = shelves.tag_image("FIZZO COLA 330ML", price, i % len(shelves.TAG_STYLES))
        small = cv2.resize(tag, (w, height), interpolation=cv2.INTER_AREA)
        x, y = 20 + i * (w + 20), height
        image[y : y + height, x : x + w] = np.clip(small, 0, 255).astype(np.uint8)
        boxes.append([x, y, x + w, y + height])
    return image, np.array(boxes, float)


@pytest.mark.parametrize("height", [14, 20, 32])
def test_price_reader_reads_generator_tags(height):
    prices = ["2.49", "0.89", "12.99", "7.05", "3.10", "104.50"]
    image, boxes = _generator_tags(prices, height)
    assert read_prices(image, boxes) == prices
    jittered = boxes + np.array([-1.5, 1.0, 1.0, -0.5])  # a detector's box is never exact
    assert read_prices(image, jittered) == prices


def test_backlog_lanes_read_prices_on_their_own_compile_with_the_same_results():
    import threading

    prices = ["2.49", "0.89", "12.99", "7.05", "3.10", "104.50"]
    image, boxes = _generator_tags(prices, 16)
    reader = ENGINES.prices.get()
    lanes = ENGINES.for_lanes().prices.get()
    got, errors = [], []

    def lane(n: int) -> None:
        try:
            for _ in range(5):  # several lanes at once, more boxes for some: a request per thread
                got.append(ocr.read_prices(image, np.concatenate([boxes] * n), lanes))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=lane, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 15
    assert all(g == prices * (len(g) // len(prices)) for g in got)
    # the lanes' compile: one one-thread stream per lane there can be, made once, beside the idle one's
    assert lanes is not reader and lanes.runtime is not reader.runtime and lanes.refiner is reader.refiner
    assert ENGINES.for_lanes().prices.get() is lanes
    assert int(lanes.runtime._compiled.get_property("NUM_STREAMS")) == lane_slots()


def test_price_ocr_setting_picks_the_reader():
    assert Config().price_ocr == "price-rec"
    assert load_config(environ={"EDGECV_PRICE_OCR": "ppocr"}).price_ocr == "ppocr"
    with pytest.raises(ConfigError, match="price_ocr: expected price-rec or ppocr"):
        load_config(environ={"EDGECV_PRICE_OCR": "tesseract"})
    ppocr = Engines.from_config(Config(price_ocr="ppocr"))
    assert ppocr.for_lanes() == ppocr  # PP-OCR has no lane compile: lanes share it
    assert ppocr.prices.loaded is None and ppocr.text.loaded is None  # nothing loaded before it is used


# a loose box as shelf-detection-v2 draws one on a small tag: too tall, its bottom edge on the shelf lip
LOOSE = np.array([-0.15, -0.15, 0.2, 0.45])


@pytest.mark.parametrize("height", [12, 20, 32])
def test_tag_refiner_moves_loose_boxes_onto_the_tags(height):
    prices = ["2.49", "0.89", "12.99", "7.05", "3.10", "104.50"]
    image, boxes = _generator_tags(prices, height)
    loose = boxes + LOOSE * height
    refiner = ENGINES.prices.get().refiner
    assert refiner is not None, "the shipped price reader comes with its tag box refiner"
    before, after = box_iou(loose, boxes), box_iou(refiner.refine(image, loose), boxes)
    assert np.all(after > before + 0.15), (before, after)
    assert after.mean() > 0.75
    assert read_prices(image, loose) == prices  # refined before the price is cut


def test_tag_refiner_keeps_degenerate_and_empty_boxes():
    refiner = ENGINES.prices.get().refiner
    image = np.full((40, 80, 3), 128, np.uint8)
    assert refiner.refine(image, np.zeros((0, 4))).shape == (0, 4)
    flat = np.array([[10.0, 10.0, 10.0, 30.0]])  # no width: nothing to look at, kept as given
    assert np.array_equal(refiner.refine(image, flat), flat)


@pytest.mark.parametrize(
    ("meta_name", "load"), [("model.json", text.PriceReader), ("refiner.json", text.TagRefiner)]
)
def test_shipped_price_files_are_small_and_checked(tmp_path, meta_name, load):
    meta = json.loads((text.PRICE_MODEL_DIR / meta_name).read_text())
    weights = text.PRICE_MODEL_DIR / meta["file"]
    assert weights.stat().st_size < 1_000_000
    if meta_name == "model.json":
        assert meta["alphabet"] == text.PRICE_CHARS
    (tmp_path / meta_name).write_text(json.dumps(meta))
    (tmp_path / meta["file"]).write_bytes(weights.read_bytes()[:-1] + b"x")
    with pytest.raises(PipelineError, match="sha256"):
        load(tmp_path)


def test_price_reader_without_a_refiner_reads_the_boxes_as_given(tmp_path):
    meta = json.loads((text.PRICE_MODEL_DIR / "model.json").read_text())
    (tmp_path / meta["file"]).write_bytes((text.PRICE_MODEL_DIR / meta["file"]).read_bytes())
    (tmp_path / "model.json").write_text(json.dumps(meta))
    reader = text.PriceReader(tmp_path)
    assert reader.refiner is None
    image, boxes = _generator_tags(["2.49", "0.89"], 20)
    assert [ocr.format_price(t) for t in reader.read(image, boxes)] == ["2.49", "0.89"]


def test_sample_regions_puts_the_grid_on_the_region():
    ramp = np.tile(np.arange(64, dtype=np.uint8), (24, 1))  # grey value = x
    grey, ok, edges = text.sample_regions(ramp, np.array([[10.0, 4.0, 42.0, 20.0]]), (16, 32), (0, 0, 1, 1))
    assert ok.all() and np.allclose(edges, [[10, 4, 42, 20]])
    assert np.array_equal(grey[0], np.tile(np.arange(10, 42, dtype=np.uint8), (16, 1)))  # pixel centres
    # a region past the image's left edge repeats the edge pixel instead of failing
    grey, ok, edges = text.sample_regions(ramp, np.array([[-8.0, 4.0, 8.0, 20.0]]), (16, 16), (0, 0, 1, 1))
    assert ok.all() and np.array_equal(grey[0, 0], [0] * 8 + list(range(8)))


def test_price_reader_crops_with_the_region_it_was_trained_on(tmp_path):
    """model.json's input.region is the crop the pipeline cuts; a file without it gets PRICE_REGION."""
    meta = json.loads((text.PRICE_MODEL_DIR / "model.json").read_text())
    (tmp_path / meta["file"]).write_bytes((text.PRICE_MODEL_DIR / meta["file"]).read_bytes())
    meta["input"]["region"] = [0.0, 0.5, 1.0, 1.0]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    reader = text.PriceReader(tmp_path)
    assert reader.region == (0.0, 0.5, 1.0, 1.0)
    image = np.zeros((40, 80, 3), np.uint8)
    image[:20] = 255  # top half of the box white, bottom half black: this region sees only black
    batch, ok = text.price_inputs(image, np.array([[0, 0, 80, 40]]), reader.size, reader.region)
    assert ok[0] and np.all(batch == 0)  # a flat crop standardises to zero
    del meta["input"]["region"]
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert text.PriceReader(tmp_path).region == text.PRICE_REGION


def test_tiny_and_empty_boxes():
    image = np.zeros((50, 50, 3), np.uint8)
    assert read_prices(image, np.zeros((0, 4))) == []
    assert read_prices(image, np.array([[10, 10, 11, 11]])) == [None]


def test_ppocr_fallback_reads_a_rendered_price_tag():
    pytest.importorskip("rapidocr")
    image, boxes = _generator_tags(["2.49", "1.05"], 40)
    ppocr = Engines.from_config(Config(price_ocr="ppocr"))
    assert ocr.read_prices(image, boxes, ppocr.prices.get()) == ["2.49", "1.05"]
    assert ppocr.text.loaded is not None  # the fallback reads with the text engine's model


def test_ppocr_model_comes_from_the_wheel():
    pytest.importorskip("rapidocr")
    path = text.model_path()
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


def test_batched_price_inputs_and_ctc_decoding():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 200, 3), np.uint8)
    boxes = np.array([[10, 10, 60, 30], [100, 50, 101, 51], [150, 80, 199, 119]], float)
    batch, ok = text.price_inputs(image, boxes, (24, 64))
    assert ok.tolist() == [True, False, True] and batch.shape == (3, 24, 64)
    for b, x, good in zip(boxes, batch, ok, strict=True):
        one = text.price_input(image, b, (24, 64))
        assert (one is None) == (not good)
        if good:
            assert np.allclose(one, x, atol=1e-5)
    table = ["", "1", "2", "."]
    assert text.ctc_greedy(np.array([[0, 1, 1, 0, 1, 3, 2, 2], [2, 0, 2, 9, 0, 0, 0, 0]]), table) == [
        "11.2",
        "22",
    ]
    assert text.ctc_greedy(np.zeros((0, 16), np.int64), table) == []
