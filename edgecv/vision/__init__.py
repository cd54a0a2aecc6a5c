"""Domain pipelines: pure functions from detections to the CV Jobs ``result`` object.

Contract (every pipeline):

    def run(inp: PipelineInput) -> dict   # {"detections": [...], "summary": {...}}

``PipelineInput.image`` is the decoded BGR image (EXIF orientation applied) for pipelines that need
pixels (e.g. reading price tags); everything else is arrays in, dict out, no I/O. A pipeline that reads
pixels (``needs_pixels``) always gets the full-size image; another one may get an empty image with
``size`` set when the detector saw a reduced decode (a large JPEG): boxes are in original pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecv.detections import Detections
from edgecv.errors import PipelineError


@dataclass
class PipelineInput:
    image: np.ndarray
    detections: Detections
    labels: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None  # (width, height) of the original when ``image`` holds no pixels

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the original image."""
        if self.size is not None:
            return self.size
        h, w = self.image.shape[:2]
        return w, h


def needs_pixels(pipeline: str, options: dict[str, Any]) -> bool:
    """Whether pipeline ``pipeline`` reads the image's pixels (at original resolution): the shelf
    pipeline's price-tag reader (unless ``ocr`` is off) and the damage pipeline's crack measurements."""
    if pipeline == "shelf":
        return bool(options.get("ocr", True))
    return pipeline == "damage"


Pipeline = Callable[[PipelineInput], dict]


def get_pipeline(name: str) -> Pipeline:
    """Look up a pipeline by the name a model manifest gives (``generic``, ``shelf``, ``building``, ``damage``)."""
    from edgecv.vision import generic

    registry: dict[str, Pipeline] = {"generic": generic.run}
    for module_name in ("shelf", "building", "damage"):
        try:
            module = __import__(f"edgecv.vision.{module_name}", fromlist=["run"])
        except ImportError:
            continue
        registry[module_name] = module.run
    if name not in registry:
        raise PipelineError(f"unknown pipeline {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]
