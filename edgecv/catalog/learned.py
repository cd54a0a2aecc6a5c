"""The catalogue's learned embedding: a small CNN (``embedder/embedder.onnx``, trained by
scripts/train_catalog_embedding.py on made-up packs and the Grocery Store Dataset's allowed classes) that
turns a 64x64 product crop into 128 numbers, unit length. ``edgecv.catalog.features`` puts it beside the
hand-made features; without the model file the catalogue runs on those alone.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from edgecv.errors import ModelPackageError
from edgecv.runtime.backends import open_shipped

log = logging.getLogger(__name__)

MODEL_DIR = Path(__file__).resolve().parent / "embedder"
CARD = "embedder.json"
SIZE = 64
BATCH = 64  # crops per inference request at most (the model's batch is dynamic: no padding)


class LearnedEmbedder:
    def __init__(self, model_dir: Path = MODEL_DIR) -> None:
        card, self._runtime = open_shipped(model_dir, CARD, "catalogue embedder", num_threads=1)
        self.dim = int(card["output"]["dim"])
        self.sha256 = str(card["sha256"])

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """uint8 BGR crops [n, SIZE, SIZE, 3] -> float32 [n, dim], unit rows."""
        out = np.zeros((len(crops), self.dim), np.float32)
        for at in range(0, len(crops), BATCH):
            batch = crops[at : at + BATCH].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
            out[at : at + BATCH] = self._runtime.infer(np.ascontiguousarray(batch))
        return out


@functools.cache
def embedder() -> LearnedEmbedder | None:
    """The shipped embedder, loaded once; None when it is not installed (hand-made features only)."""
    if not (MODEL_DIR / CARD).exists():
        return None
    try:
        return LearnedEmbedder()
    except ModelPackageError as exc:
        log.warning("%s; the catalogue uses its hand-made features only", exc)
        return None
