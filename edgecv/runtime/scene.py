"""The scene check: how much an image looks like a model's domain, before its detector is asked.

A detector trained on shelves finds "products" on a cat if it is shown one. Every shipped package names
the scene it was made for (``domain.scene`` in ``model.json``: ``retail``, ``facade`` or ``surface``) and a
threshold; one small classifier (``scene/scene-check.onnx``, trained by ``scripts/train_scene_check.py``)
scores the whole image for each scene. A job whose image scores under the threshold completes with no
detections and says so in ``result.domain`` (docs/api.md). Packages without a ``domain`` entry (custom
models) are never checked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgecv.errors import ModelPackageError
from edgecv.runtime.backends import open_shipped
from edgecv.runtime.package import DomainSpec

log = logging.getLogger(__name__)

SCENE_DIR = Path(__file__).resolve().parent / "scene"
META = "scene-check.json"


@dataclass(frozen=True)
class DomainVerdict:
    """What ``result.domain`` reports: the expected scene, its score, the threshold and the outcome."""

    scene: str
    score: float
    threshold: float

    @property
    def in_domain(self) -> bool:
        return self.score >= self.threshold

    def as_result(self) -> dict:
        return {
            "scene": self.scene,
            "score": round(self.score, 4),
            "threshold": self.threshold,
            "inDomain": self.in_domain,
        }


class SceneCheck:
    """The scene classifier, opened once and shared by every thread (one request per thread)."""

    def __init__(self, model_dir: Path = SCENE_DIR, backend: str = "auto") -> None:
        meta, self._runtime = open_shipped(model_dir, META, "scene check", num_threads=1, backend=backend)
        self.scenes: list[str] = list(meta["scenes"])
        self.size = int(meta["input"]["size"])

    def scores(self, image_bgr: np.ndarray) -> dict[str, float]:
        """Probability of each scene for the whole image (they sum to 1)."""
        small = cv2.resize(image_bgr, (self.size, self.size), interpolation=cv2.INTER_AREA)
        if small.ndim == 2:
            small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
        probs = self._runtime.infer(np.ascontiguousarray(small[None], dtype=np.float32))[0]
        return {scene: float(p) for scene, p in zip(self.scenes, probs, strict=True)}

    def verdict(
        self, image_bgr: np.ndarray, spec: DomainSpec, threshold: float | None = None
    ) -> DomainVerdict:
        """The image's score for ``spec.scene`` against ``threshold`` (default the package's)."""
        if spec.scene not in self.scenes:
            raise ModelPackageError(
                f"domain.scene {spec.scene!r} is not one of the scene check's {self.scenes}"
            )
        score = self.scores(image_bgr)[spec.scene]
        return DomainVerdict(spec.scene, score, spec.threshold if threshold is None else threshold)
