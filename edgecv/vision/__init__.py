"""Domain pipelines: pure functions from detections to the CV Jobs ``result`` object.

Contract (every pipeline):

    def run(inp: PipelineInput) -> dict   # {"detections": [...], "summary": {...}}

``PipelineInput.image`` is the decoded BGR image (EXIF orientation applied) for pipelines that need
pixels (e.g. reading price tags); everything else is arrays in, dict out, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgecv.errors import PipelineError
from edgecv.runtime.detections import Detections


@dataclass
class PipelineInput:
    image: np.ndarray
    detections: Detections
    labels: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the original image."""
        h, w = self.image.shape[:2]
        return w, h


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
