"""Domain pipelines: pure functions from detections to the CV Jobs ``result`` object.

Contract (every pipeline):

    def run(inp: PipelineInput) -> dict   # {"detections": [...], "summary": {...}}

``PipelineInput.image`` is the decoded BGR image (EXIF orientation applied) for pipelines that need
pixels (e.g. reading price tags); everything else is arrays in, dict out, no I/O. A pipeline that reads
pixels (``needs_pixels``) always gets the full-size image; another one may get an empty image with
``size`` set when the detector saw a reduced decode (a large JPEG): boxes are in original pixels.

Models other than the detector (the price reader, PP-OCR) are not loaded here: whoever runs the
pipeline hands them in as ``PipelineInput.engines`` (``edgecv.runtime.engines.Engines``), each behind
the small reading interface below, loaded on first ``get()``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from edgecv.detections import Detections
from edgecv.errors import PipelineError

T_co = TypeVar("T_co", covariant=True)


class Engine(Protocol[T_co]):
    def get(self) -> T_co:
        """The loaded engine; raises EdgecvError when it cannot be loaded."""
        ...


class PriceReading(Protocol):
    def read(self, image: np.ndarray, boxes: np.ndarray) -> list[str | None]:
        """The raw text on each tag box's price line (None where there is nothing to read), one batch."""
        ...


class RegionReading(Protocol):
    def read_regions(
        self, image: np.ndarray, boxes: np.ndarray, region, charset: str | None = None
    ) -> list[str | None]:
        """The text line in ``region`` (fractions of the box) of each box, one batch (None: too small)."""
        ...


class CatalogReading(Protocol):
    threshold: float  # the similarity a product needs to be named

    def get(self) -> Any:
        """The current catalogue (``edgecv.catalog.index.CatalogIndex``: ``recognise(image, boxes,
        threshold, confidence)``, ``skus``, ``by_id``, ``by_name``, ``describe()``), or None while it holds
        no SKU."""
        ...


class PipelineEngines(Protocol):
    """What a pipeline may call besides the detector."""

    @property
    def prices(self) -> Engine[PriceReading]: ...

    @property
    def text(self) -> Engine[RegionReading]: ...

    @property
    def catalog(self) -> Engine[CatalogReading]: ...


@dataclass
class PipelineInput:
    image: np.ndarray
    detections: Detections
    labels: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None  # (width, height) of the original when ``image`` holds no pixels
    engines: PipelineEngines | None = None  # None: nothing but the detections (text is not read)

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the original image."""
        if self.size is not None:
            return self.size
        h, w = self.image.shape[:2]
        return w, h


def needs_pixels(pipeline: str, options: dict[str, Any]) -> bool:
    """Whether pipeline ``pipeline`` reads the image's pixels (at original resolution): the shelf
    pipeline's price-tag reader (unless ``ocr`` is off) and catalogue recognition (``catalog``: the worker
    sets it when the catalogue holds SKUs), and the damage pipeline's crack measurements."""
    if pipeline == "shelf":
        return bool(options.get("ocr", True) or options.get("catalog", False))
    return pipeline == "damage"


Pipeline = Callable[[PipelineInput], dict]


def get_pipeline(name: str) -> Pipeline:
    """Look up a pipeline by the name a model manifest gives (``generic``, ``shelf``, ``building``, ``damage``)."""
    pipelines = _pipelines()
    if name not in pipelines:
        raise PipelineError(f"unknown pipeline {name!r}; known: {', '.join(sorted(pipelines))}")
    return pipelines[name]


@functools.cache
def _pipelines() -> dict[str, Pipeline]:
    # imported on first use: the pipeline modules import this package's PipelineInput
    from edgecv.vision import building, damage, generic, shelf

    return {"generic": generic.run, "shelf": shelf.run, "building": building.run, "damage": damage.run}
