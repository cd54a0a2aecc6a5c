"""What every request handler reads: the app's state (config, store, metrics, models, disk budget) and
the one JSON error shape.

A module of its own so that :mod:`edgecv.api.routes` and :mod:`edgecv.api.app` both import it and
neither imports the other back (the app registers the routes; the routes need only this).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from edgecv.api.metrics import Metrics
from edgecv.config import Config
from edgecv.privacy import PrivacyFilter
from edgecv.store import Store
from edgecv.upstream.budget import DiskBudget

ModelsProvider = Callable[[], dict[str, Any]]


@dataclass
class ApiState:
    """The agent's objects a request may use, set once on ``app.state.edgecv`` by ``create_app``."""

    config: Config
    store: Store
    metrics: Metrics
    models_provider: ModelsProvider
    budget: DiskBudget | None = None  # the agent's one disk-budget owner; None = uploads unlimited
    privacy: PrivacyFilter | None = None  # faces in images served to remote clients (default: config's)
    models_ttl_s: float = 5.0
    detectors: Any = None  # a DetectorPool for `catalog/match` (the API's own, opened on first use)
    _models: dict[str, Any] = field(default_factory=dict)
    _models_at: float = -1e9

    def __post_init__(self) -> None:
        if self.privacy is None:
            self.privacy = PrivacyFilter(self.config.privacy)

    def detector_pool(self) -> Any:
        if self.detectors is None:
            from edgecv.work.pool import DetectorPool

            self.detectors = DetectorPool(self.config)
        return self.detectors

    def models(self) -> dict[str, Any]:
        """Installed model packages by name, re-scanned at most every ``models_ttl_s`` seconds."""
        now = time.monotonic()
        if now - self._models_at > self.models_ttl_s:
            self._models = dict(self.models_provider())
            self._models_at = now
        return self._models


def state(request: Request) -> ApiState:
    return request.app.state.edgecv


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)
