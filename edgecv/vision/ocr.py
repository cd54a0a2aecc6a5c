"""Price-tag reading with the PP-OCR recognition model that ships inside the ``rapidocr`` wheel.

Recognition only (no text detection, no angle classifier): the detector already found the tag, so the
price line is cropped from the tag box, resized to the model's 48-px height and read in one batch per
image. Decoding is CTC greedy restricted to digits and the decimal mark, so a blurry ``0`` cannot come
out as ``O``; a price is formatted ``d+.dd`` (a missed dot is restored before the last two digits).

The model file is opened from the installed wheel by path, never fetched: rapidocr's own loader is not
used because it resolves models through a download table. The model runs on OpenVINO when it is
installed (bf16 on CPUs that have it), otherwise on ONNX Runtime; it is loaded once, lazily, per process.
"""

from __future__ import annotations

import logging
import re
import threading
from importlib.util import find_spec
from pathlib import Path

import cv2
import numpy as np

from edgecv.errors import PipelineError

log = logging.getLogger(__name__)

REC_MODEL = "PP-OCRv6_rec_small.onnx"
REC_HEIGHT = 48
PRICE_CHARS = "0123456789.,"
# price line inside a tag box, as fractions of its width / height (name line above it is small)
PRICE_REGION = (0.25, 0.22, 1.0, 1.0)
NAME_REGION = (0.0, 0.0, 1.0, 0.3)
_PRICE_RE = re.compile(r"^\d{1,4}\.\d{2}$")


def model_path() -> Path:
    """The recognition model inside the installed rapidocr wheel."""
    spec = find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise PipelineError("price-tag OCR needs the rapidocr package: pip install rapidocr==3.10.0")
    path = Path(spec.origin).parent / "models" / REC_MODEL
    if not path.is_file():
        raise PipelineError(f"rapidocr is installed but its model {path} is missing; reinstall rapidocr")
    return path


class TextReader:
    """One loaded recognition model; ``read(crops, charset)`` → strings."""

    def __init__(self, path: Path | None = None, backend: str = "auto") -> None:
        self.path = path or model_path()
        self._infer, chars = _load(self.path, backend)
        self.table = ["", *chars, " "]  # CTC: index 0 = blank; the model adds a space class last
        self._subsets: dict[str, np.ndarray] = {}

    def _subset(self, charset: str | None) -> np.ndarray | None:
        if charset is None:
            return None
        if charset not in self._subsets:
            self._subsets[charset] = np.array(
                [0] + [i for i, ch in enumerate(self.table) if ch and ch in charset], np.int64
            )
        return self._subsets[charset]

    def read(self, crops: list[np.ndarray], charset: str | None = None) -> list[str]:
        """Text of each BGR crop (one line each), in one batch."""
        if not crops:
            return []
        lines = [_to_line(c) for c in crops]
        width = max(x.shape[1] for x in lines)
        batch = np.zeros((len(lines), 3, REC_HEIGHT, width), np.float32)
        for i, x in enumerate(lines):
            batch[i, :, :, : x.shape[1]] = x.transpose(2, 0, 1)
        probs = self._infer(batch)  # (n, time, classes)
        subset = self._subset(charset)
        if subset is not None:
            best = subset[probs[:, :, subset].argmax(axis=2)]
        else:
            best = probs.argmax(axis=2)
        return [self._ctc(seq) for seq in best]

    def _ctc(self, seq: np.ndarray) -> str:
        out, prev = [], 0
        for k in seq:
            if k != prev and k != 0:
                out.append(self.table[k] if k < len(self.table) else "")
            prev = k
        return "".join(out)


def _to_line(crop: np.ndarray) -> np.ndarray:
    """BGR crop → float32 (48, w, 3) normalised to -1..1 as PP-OCR expects."""
    h, w = crop.shape[:2]
    new_w = max(8, int(round(w * REC_HEIGHT / max(h, 1))))
    line = cv2.resize(crop, (new_w, REC_HEIGHT), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    return line * (2.0 / 255.0) - 1.0


def _load(path: Path, backend: str):
    if backend in ("auto", "openvino") and find_spec("openvino") is not None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        chars = model.get_rt_info(["framework", "character"]).astype(str).splitlines()
        compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        lock = threading.Lock()

        def infer(batch: np.ndarray) -> np.ndarray:
            with lock:
                return np.array(request.infer([batch])[0])

        log.info("price-tag OCR: %s on OpenVINO CPU", path.name)
        return infer, chars
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    chars = session.get_modelmeta().custom_metadata_map["character"].splitlines()
    name = session.get_inputs()[0].name
    log.info("price-tag OCR: %s on ONNX Runtime CPU", path.name)
    return (lambda batch: session.run(None, {name: batch})[0]), chars


_reader: TextReader | None = None
_reader_lock = threading.Lock()


def get_reader() -> TextReader:
    """The process-wide reader, loaded on first use."""
    global _reader
    if _reader is None:
        with _reader_lock:
            if _reader is None:
                _reader = TextReader()
    return _reader


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


def format_price(text: str) -> str | None:
    """OCR text → ``"2.49"``, or None when it is not a price (fewer than three digits)."""
    digits = re.sub(r"\D", "", text)
    if len(digits) < 3:
        return None
    price = f"{int(digits[:-2])}.{digits[-2:]}"
    return price if _PRICE_RE.match(price) else None


def read_prices(image: np.ndarray, boxes: np.ndarray, reader: TextReader | None = None) -> list[str | None]:
    """The price on each tag box (xyxy), None where nothing readable; one model call for all tags."""
    crops = [crop(image, b, PRICE_REGION) for b in np.asarray(boxes).reshape(-1, 4)]
    keep = [i for i, c in enumerate(crops) if c is not None]
    out: list[str | None] = [None] * len(crops)
    if keep:
        texts = (reader or get_reader()).read([crops[i] for i in keep], PRICE_CHARS)
        for i, text in zip(keep, texts, strict=True):
            out[i] = format_price(text)
    return out


def read_names(image: np.ndarray, boxes: np.ndarray, reader: TextReader | None = None) -> list[str]:
    """The product-name line at the top of each tag box ('' where unreadable)."""
    crops = [crop(image, b, NAME_REGION) for b in np.asarray(boxes).reshape(-1, 4)]
    keep = [i for i, c in enumerate(crops) if c is not None]
    out = [""] * len(crops)
    if keep:
        for i, text in zip(keep, (reader or get_reader()).read([crops[i] for i in keep]), strict=True):
            out[i] = text.strip()
    return out
