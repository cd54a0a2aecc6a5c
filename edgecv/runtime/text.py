"""Text engines: the tag box refiner, the shipped price reader and PP-OCR, each on ``backends.py``.

Prices are read by ``price_ocr/price-rec.onnx``, a CRNN trained on the generator's own tags
(``scripts/train_price_ocr.py``). Each tag box is first moved onto the tag's edges by the tag box refiner
(``TagRefiner``, ``price_ocr/tag-refine.npz``: the detector's boxes on small tags are loose), then the
price region of each box (``model.json``'s ``input.region``, the crop the model was trained on;
``PRICE_REGION`` for files without one) is cut, turned grey, stretched to a fixed ``24 × 64`` input and
standardised (``price_input``, the same function training uses); all of an image's tags go through in
one batch (the batch dimension is dynamic, height and width are static). CTC greedy decoding over
``0123456789.,``. The files' sha256 is checked against their metadata when a reader is loaded.

Text lines (``TextReader``: empty-slot tag names, and the fallback price reader ``PpocrPrices``) use the
PP-OCRv6 small recognition model inside the ``rapidocr`` wheel, opened by path, never fetched (rapidocr's
own loader resolves models through a download table).

Every model here runs on OpenVINO when it is installed (whatever the detector's ``backend`` is), else on
ONNX Runtime. Inference goes through the backends' own thread rule (one OpenVINO request per calling
thread, ONNX Runtime sessions re-entrant): no lock. Which compile a caller uses is the caller's choice
(``PriceReader.on_lanes``), made by whoever hands the reader out (``edgecv.runtime.engines``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

from edgecv.errors import PipelineError
from edgecv.runtime.backends import Backend, OnnxRuntimeBackend, OpenVinoBackend
from edgecv.threads import lane_slots, usable_cores

log = logging.getLogger(__name__)

PRICE_CHARS = "0123456789.,"
# price line inside a tag box, as fractions of its width / height; a little margin for detector jitter.
# The first readers' crop, for model.json files without input.region (a reader's own crop wins)
PRICE_REGION = (0.12, 0.24, 1.02, 1.02)
# the tag box refiner's view of a detector tag box: the box and a margin round it (fractions of the box)
TAG_WINDOW = (-0.2, -0.4, 1.2, 1.4)
PRICE_MODEL_DIR = Path(__file__).with_name("price_ocr")

# PP-OCR (names, fallback price reader)
REC_MODEL = "PP-OCRv6_rec_small.onnx"
REC_HEIGHT = 48
PPOCR_PRICE_REGION = (0.25, 0.22, 1.0, 1.0)

OCR_THREADS = 2


def ctc_greedy(best: np.ndarray, table: list[str]) -> list[str]:
    """Best class per time step (n, time) → strings; class 0 is the CTC blank, repeats collapse."""
    best = np.asarray(best)
    if best.size == 0:
        return [""] * len(best)
    # keep a step when it differs from the previous one (the step before the first is blank) and is a class
    prev = np.zeros_like(best)
    prev[:, 1:] = best[:, :-1]
    keep = (best != prev) & (best != 0) & (best < len(table))
    chars = np.array([*table, ""])[np.where(keep, best, len(table))]  # dropped steps → ""
    return ["".join(row) for row in chars.tolist()]


def crop(image: np.ndarray, xyxy, region=(0.0, 0.0, 1.0, 1.0)) -> np.ndarray | None:
    """The ``region`` (fractions of the box) of a box, clipped to the image; None when too small."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    w, h = x2 - x1, y2 - y1
    fx1, fy1, fx2, fy2 = region
    ih, iw = image.shape[:2]
    a, b = max(0, int(x1 + fx1 * w)), max(0, int(y1 + fy1 * h))
    c, d = min(iw, int(np.ceil(x1 + fx2 * w))), min(ih, int(np.ceil(y1 + fy2 * h)))
    if c - a < 3 or d - b < 3:
        return None
    return image[b:d, a:c]


# ------------------------------------------------------------------------------ price reader input
def price_input(image: np.ndarray, xyxy, size: tuple[int, int], region=PRICE_REGION) -> np.ndarray | None:
    """The price region of a tag box as the price reader's input: float32 (h, w), standardised grey."""
    batch, ok = price_inputs(image, np.asarray(xyxy, np.float64).reshape(1, 4), size, region)
    return batch[0] if ok[0] else None


def price_inputs(
    image: np.ndarray, boxes: np.ndarray, size: tuple[int, int], region=PRICE_REGION
) -> tuple[np.ndarray, np.ndarray]:
    """``price_input`` for many tag boxes: float32 (n, h, w) and a mask of the boxes that gave a crop
    (the others are left zero). Each crop is cut, greyed and resized on its own; the standardisation
    ``(x - mean) / (std + 8)`` runs over the whole batch at once."""
    h, w = size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    grey = np.zeros((len(boxes), h, w), np.uint8)
    ok = np.zeros(len(boxes), bool)
    colour = image.ndim == 3
    # the crop() rule for every box at once: region edges truncated / ceiled, clipped, ≥ 3 px each way
    ih, iw = image.shape[:2]
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    fx1, fy1, fx2, fy2 = region
    x0 = np.maximum(0, np.trunc(boxes[:, 0] + fx1 * bw)).astype(np.int64)
    y0 = np.maximum(0, np.trunc(boxes[:, 1] + fy1 * bh)).astype(np.int64)
    x1 = np.minimum(iw, np.ceil(boxes[:, 0] + fx2 * bw)).astype(np.int64)
    y1 = np.minimum(ih, np.ceil(boxes[:, 1] + fy2 * bh)).astype(np.int64)
    good = (x1 - x0 >= 3) & (y1 - y0 >= 3)
    for i, a, b, c, d in zip(
        np.flatnonzero(good).tolist(),
        x0[good].tolist(),
        y0[good].tolist(),
        x1[good].tolist(),
        y1[good].tolist(),
        strict=True,
    ):
        g = image[b:d, a:c]
        g = cv2.cvtColor(g, cv2.COLOR_BGR2GRAY) if colour else g
        interp = cv2.INTER_AREA if g.shape[1] > w else cv2.INTER_LINEAR
        grey[i] = cv2.resize(g, (w, h), interpolation=interp)
        ok[i] = True
    return _standardise(grey, ok), ok


def _standardise(grey: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """uint8 crops (n, h, w) → float32 ``(x - mean) / (std + 8)`` per crop; crops not ``ok`` are zero."""
    n, h, w = grey.shape
    # per crop over one flat axis: the same float32 values as x.std(axis=(1, 2)), ~25 % less time
    x = grey.reshape(n, h * w).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    x /= np.sqrt(np.square(x).mean(axis=1, keepdims=True)) + 8.0
    x[~ok] = 0.0
    return x.reshape(n, h, w)


def tag_windows(
    image: np.ndarray, boxes: np.ndarray, size: tuple[int, int], region=TAG_WINDOW
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tag box refiner's input: each box with its surroundings (``region``, fractions of the box),
    grey, standardised like the reader's crops: float32 (n, h, w), the mask of boxes with a positive
    size, and each window's edges in pixels (n, 4, float)."""
    grey, ok, win = sample_regions(image, boxes, size, region)
    return _standardise(grey, ok), ok, win


def sample_regions(
    image: np.ndarray, boxes: np.ndarray, size: tuple[int, int], region
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``region`` (fractions of each box, float edges) of every box sampled bilinearly onto a ``size``
    grid, all boxes in one ``cv2.remap`` (edge pixels repeated past the image's border), then grey:
    uint8 (n, h, w), the mask of boxes with a positive size, and the regions' edges in pixels (n, 4)."""
    h, w = size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(boxes)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    fx1, fy1, fx2, fy2 = region
    win = np.stack(
        [boxes[:, 0] + fx1 * bw, boxes[:, 1] + fy1 * bh, boxes[:, 0] + fx2 * bw, boxes[:, 1] + fy2 * bh],
        axis=1,
    )
    ok = (bw > 0) & (bh > 0)
    if not n:
        return np.zeros((0, h, w), np.uint8), ok, win
    # pixel centres of the grid in image coordinates (cv2 puts pixel k's centre at k)
    gx = (win[:, :1] + (np.arange(w) + 0.5) * ((win[:, 2:3] - win[:, :1]) / w) - 0.5).astype(np.float32)
    gy = (win[:, 1:2] + (np.arange(h) + 0.5) * ((win[:, 3:4] - win[:, 1:2]) / h) - 0.5).astype(np.float32)
    map_x = np.repeat(gx, h, axis=0)  # (n * h, w): row r of box i samples x = gx[i]
    map_y = np.repeat(gy.reshape(n * h, 1), w, axis=1)  # and y = gy[i, r]
    sampled = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(sampled, cv2.COLOR_BGR2GRAY) if sampled.ndim == 3 else sampled
    return grey.reshape(n, h, w), ok, win


# ------------------------------------------------------------------------------ tag box refiner
def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TagRefiner:
    """Moves a detector's tag box onto the tag's edges before the price is cut (``tag-refine.npz``).

    shelf-detection-v2's tag boxes are loose on small tags, and a crop off by a tenth of a tag's height
    costs the reader more than the pixels do. The refiner is a small MLP (``scripts/train_tag_refiner.py``)
    on the box's window (``TAG_WINDOW``: the box and a margin, 16 × 32 grey, standardised like the
    reader's crops) that predicts the tag's four edges as fractions of that window: two matrix products
    per batch, in numpy. Predictions are clipped to the window; a box with no area, or whose prediction
    is under 2 px either way, is kept as the detector gave it. Its measured effect on the detector's tag
    boxes is in docs/results.md ("Tag box refiner") and ``refiner.json``.
    """

    def __init__(self, model_dir: Path = PRICE_MODEL_DIR) -> None:
        meta = json.loads((model_dir / "refiner.json").read_text())
        path = model_dir / meta["file"]
        if not path.is_file() or _sha256(path) != meta["sha256"]:
            raise PipelineError(
                f"tag box refiner {path} is missing or does not match its sha256; reinstall edgecv"
            )
        self.size = (int(meta["input"]["height"]), int(meta["input"]["width"]))
        self.region = tuple(float(v) for v in meta["input"]["window"])
        with np.load(path) as z:
            self.layers = [(z[f"w{i}"].astype(np.float32), z[f"b{i}"].astype(np.float32)) for i in (1, 2)]

    def refine(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Tag boxes (n, 4 xyxy) → refined boxes (float64), one batch."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(boxes):
            return boxes
        x, ok, win = tag_windows(image, boxes, self.size, self.region)
        (w1, b1), (w2, b2) = self.layers
        hidden = x.reshape(len(x), -1) @ w1
        hidden += b1
        np.maximum(hidden, 0.0, out=hidden)
        edges = np.clip(hidden @ w2 + b2, 0.0, 1.0)  # x1, y1, x2, y2 as fractions of the window
        out = win[:, [0, 1, 0, 1]] + edges * np.tile(win[:, 2:] - win[:, :2], 2)
        sane = ok & (out[:, 2] - out[:, 0] >= 2) & (out[:, 3] - out[:, 1] >= 2)
        return np.where(sane[:, None], out, boxes)


# ------------------------------------------------------------------------------ price reader
class PriceReader:
    """The shipped price CRNN; ``read(image, boxes)`` → raw strings, one batch. Tag boxes go through the
    ``TagRefiner`` first when the model folder has one (``refiner.json``).

    ``runtime`` is the idle path's compile (``open_price_model``); ``on_lanes()`` is the same reader on
    the backlog lanes' compile."""

    def __init__(self, model_dir: Path = PRICE_MODEL_DIR, backend: str = "auto") -> None:
        meta_path = model_dir / "model.json"
        if not meta_path.is_file():
            raise PipelineError(f"price reader metadata {meta_path} is missing; reinstall edgecv")
        meta = json.loads(meta_path.read_text())
        path = model_dir / meta["file"]
        if not path.is_file() or _sha256(path) != meta["sha256"]:
            raise PipelineError(
                f"price reader {path} is missing or does not match its sha256; reinstall edgecv"
            )
        self.path, self.backend = path, backend
        self.size = (int(meta["input"]["height"]), int(meta["input"]["width"]))
        self.table = ["", *meta["alphabet"]]  # CTC: index 0 = blank
        # the crop the model was trained on travels with it (files from before 2026-12-01 lack it)
        self.region = tuple(float(v) for v in meta["input"].get("region", PRICE_REGION))
        self.runtime = open_price_model(path, backend)
        self.refiner = TagRefiner(model_dir) if (model_dir / "refiner.json").is_file() else None

    def on_lanes(self) -> PriceReader:
        """This reader on a compile for backlog lanes (``open_price_model(lanes=True)``); itself on ONNX
        Runtime, whose one session serves every thread."""
        if self.runtime.name != "openvino":
            return self
        lanes = copy.copy(self)
        lanes.runtime = open_price_model(self.path, self.backend, lanes=True)
        return lanes

    def read(self, image: np.ndarray, boxes: np.ndarray, refine: bool = True) -> list[str | None]:
        if refine and self.refiner is not None:
            boxes = self.refiner.refine(image, boxes)
        batch, ok = price_inputs(image, boxes, self.size, self.region)
        out: list[str | None] = [None] * len(batch)
        keep = np.flatnonzero(ok)
        if len(keep):
            logits = self.runtime.infer(np.ascontiguousarray(batch[keep][:, None]))  # (n, time, classes)
            for i, text in zip(keep.tolist(), ctc_greedy(logits.argmax(axis=2), self.table), strict=True):
                out[i] = text
        return out


def _ocr_threads() -> int:
    return min(OCR_THREADS, usable_cores())


def _openvino(backend: str) -> bool:
    return backend in ("auto", "openvino") and find_spec("openvino") is not None


def open_price_model(path: Path, backend: str = "auto", *, lanes: bool = False) -> Backend:
    """OpenVINO CPU (~2.5x faster than ONNX Runtime on this tiny model), else ONNX Runtime.

    The idle path's compile runs on up to ``OCR_THREADS`` threads: an image's ~20 tag crops are one
    batch, and a second thread nearly halves its wall time (docs/performance.md); an idle agent's latency
    is what it buys. Backlog lanes (``lanes``), which each have one core while the others run beside them,
    get a compile of their own: one one-thread stream per lane there can be, not pinned, each lane thread
    on its own request (a second thread's spinning cost a lane CPU per image, and sharing one request
    would make lanes wait for each other).
    """
    if _openvino(backend):
        if lanes:
            n = lane_slots()  # a stream for each lane there can be
            runtime: Backend = OpenVinoBackend(
                path, performance_hint="LATENCY", num_streams=n, num_threads=n, cpu_pinning=False
            )
        else:
            runtime = OpenVinoBackend(path, performance_hint="LATENCY", num_threads=_ocr_threads())
        log.info("price-tag OCR: %s on OpenVINO CPU%s", path.name, " (lanes)" if lanes else "")
        return runtime
    runtime = OnnxRuntimeBackend(path, num_threads=_ocr_threads())
    log.info("price-tag OCR: %s on ONNX Runtime CPU", path.name)
    return runtime


# ------------------------------------------------------------------------------ PP-OCR (rapidocr)
def model_path() -> Path:
    """The PP-OCR recognition model inside the installed rapidocr wheel."""
    spec = find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise PipelineError("tag name OCR needs the rapidocr package: pip install rapidocr==3.10.0")
    path = Path(spec.origin).parent / "models" / REC_MODEL
    if not path.is_file():
        raise PipelineError(f"rapidocr is installed but its model {path} is missing; reinstall rapidocr")
    return path


class TextReader:
    """One loaded PP-OCR recognition model; ``read(crops, charset)`` → strings."""

    def __init__(self, path: Path | None = None, backend: str = "auto") -> None:
        self.path = path or model_path()
        self.runtime = open_text_model(self.path, backend)
        chars = self.runtime.metadata["character"].splitlines()
        self.table = ["", *chars, " "]  # CTC: index 0 = blank; the model adds a space class last
        self._subsets: dict[str, np.ndarray] = {}

    def _subset(self, charset: str | None) -> np.ndarray | None:
        if charset is None:
            return None
        subset = self._subsets.get(charset)
        if subset is None:  # threads may build one at once: the same array, the last one kept
            subset = np.array([0] + [i for i, ch in enumerate(self.table) if ch and ch in charset], np.int64)
            self._subsets[charset] = subset
        return subset

    def read(self, crops: list[np.ndarray], charset: str | None = None) -> list[str]:
        """Text of each BGR crop (one line each), in one batch."""
        if not crops:
            return []
        lines = [_to_line(c) for c in crops]
        width = max(x.shape[1] for x in lines)
        batch = np.zeros((len(lines), 3, REC_HEIGHT, width), np.float32)
        for i, x in enumerate(lines):
            batch[i, :, :, : x.shape[1]] = x.transpose(2, 0, 1)
        probs = self.runtime.infer(batch)  # (n, time, classes)
        subset = self._subset(charset)
        best = subset[probs[:, :, subset].argmax(axis=2)] if subset is not None else probs.argmax(axis=2)
        return ctc_greedy(best, self.table)

    def read_regions(
        self, image: np.ndarray, boxes: np.ndarray, region, charset: str | None = None
    ) -> list[str | None]:
        """The text in the ``region`` (fractions of the box) of each box, one batch; None where the
        region is under 3 px either way."""
        crops = [crop(image, b, region) for b in np.asarray(boxes).reshape(-1, 4)]
        keep = [i for i, c in enumerate(crops) if c is not None]
        out: list[str | None] = [None] * len(crops)
        if keep:
            for i, text in zip(keep, self.read([crops[i] for i in keep], charset), strict=True):
                out[i] = text
        return out


class PpocrPrices:
    """PP-OCR as the price reader (``price_ocr = "ppocr"``): the price region of each tag box, read
    with the price characters only."""

    def __init__(self, reader: TextReader) -> None:
        self.reader = reader

    def read(self, image: np.ndarray, boxes: np.ndarray) -> list[str | None]:
        return self.reader.read_regions(image, boxes, PPOCR_PRICE_REGION, PRICE_CHARS)


def _to_line(crop: np.ndarray) -> np.ndarray:
    """BGR crop → float32 (48, w, 3) normalised to -1..1 as PP-OCR expects."""
    h, w = crop.shape[:2]
    new_w = max(8, int(round(w * REC_HEIGHT / max(h, 1))))
    line = cv2.resize(crop, (new_w, REC_HEIGHT), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    return line * (2.0 / 255.0) - 1.0


def open_text_model(path: Path, backend: str = "auto") -> Backend:
    """PP-OCR's recognition model with its character table (``metadata["character"]``): OpenVINO CPU
    (LATENCY hint; bf16 on CPUs that have it), else ONNX Runtime."""
    if _openvino(backend):
        runtime: Backend = OpenVinoBackend(path, performance_hint="LATENCY", metadata_keys=("character",))
        log.info("tag OCR: %s on OpenVINO CPU", path.name)
        return runtime
    runtime = OnnxRuntimeBackend(path, metadata_keys=("character",))
    log.info("tag OCR: %s on ONNX Runtime CPU", path.name)
    return runtime
