"""The models pipelines call besides the detector, in one object: ``Engines``.

Whoever owns the detector pools (the agent; a worker on its own) owns one ``Engines`` and hands it to
the code that runs pipelines, which passes it on in ``PipelineInput.engines``. Each engine is loaded on
first use (a pipeline that never reads a tag never loads a reader) and then shared by every thread:
the runtimes keep a request per thread, so no lock is held while inferring.

Backlog lanes (``edgecv.work.backlog``) take ``engines.for_lanes()``: the same engines, each on the compile
made for lanes where it has one (the price reader's one-thread streams), else the same object.

Adding an engine is one field here, its loader in ``from_config``, and its reading interface in
``edgecv.vision`` (``PipelineEngines``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from edgecv.catalog.index import LiveCatalog
from edgecv.config import Config
from edgecv.runtime.scene import SceneCheck
from edgecv.runtime.text import PpocrPrices, PriceReader, TextReader

T = TypeVar("T")


class Engine(Generic[T]):
    """One engine, loaded by ``load`` on the first ``get()`` (once, whichever thread asks first; a
    failed load raises to that caller and is tried again by the next). ``lanes`` is the same engine for
    backlog lanes: ``on_lanes(engine)`` of the loaded one, or this very engine without ``on_lanes``."""

    def __init__(self, load: Callable[[], T], on_lanes: Callable[[T], T] | None = None) -> None:
        self._load = load
        self._value: T | None = None
        self._lock = threading.Lock()
        self.lanes: Engine[T] = self if on_lanes is None else Engine(lambda: on_lanes(self.get()))

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._load()
                value = self._value
        return value

    @property
    def loaded(self) -> T | None:
        """The engine if it has been loaded, else None (loads nothing)."""
        return self._value


@dataclass(frozen=True)
class Engines:
    """The engines besides the detectors: the text engines a pipeline may use
    (``edgecv.vision.PipelineEngines``) and the scene check the worker asks before detecting.

    ``prices``: the price on tag boxes (the shipped CRNN, or PP-OCR with ``price_ocr = "ppocr"``);
    ``text``: PP-OCR text lines (empty-slot tag names); ``scene``: how much an image looks like each
    model's domain (``edgecv.runtime.scene``); ``catalog``: the product catalogue that names shelf products
    (``edgecv.catalog``; its ``get()`` is None while the catalogue holds no SKU)."""

    prices: Engine[PriceReader | PpocrPrices]
    text: Engine[TextReader]
    scene: Engine[SceneCheck]
    catalog: Engine[LiveCatalog]

    @classmethod
    def from_config(cls, config: Config) -> Engines:
        """The engines ``config`` asks for, none loaded yet. They run on OpenVINO when it is installed,
        whatever ``config.backend`` says (that is the detectors' setting), as they always have."""
        text = Engine(TextReader)
        if config.price_ocr == "ppocr":
            prices: Engine = Engine(lambda: PpocrPrices(text.get()))
        else:
            prices = Engine(PriceReader, PriceReader.on_lanes)
        catalog = Engine(
            lambda: LiveCatalog(
                config.catalog_dir, config.cache_dir, config.catalog_threshold, config.max_image_pixels
            )
        )
        return cls(prices=prices, text=text, scene=Engine(SceneCheck), catalog=catalog)

    def for_lanes(self) -> Engines:
        """These engines for backlog lanes: each one's ``lanes`` engine (loaded once, shared by lanes)."""
        return dataclasses.replace(
            self, **{f.name: getattr(self, f.name).lanes for f in dataclasses.fields(self)}
        )
