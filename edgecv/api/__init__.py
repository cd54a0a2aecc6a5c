"""The local tenant API (the CV Jobs API's paths), its metrics and its server.

``make_server(config, store, metrics=Metrics(store))`` → :class:`ApiServer` with ``start()``/``stop()``
(background thread) or ``serve_forever()``/``shutdown()``.

The names are imported on first use (PEP 562): an agent with the API disabled still keeps
:class:`Metrics` (prometheus_client only) without loading fastapi, starlette, pydantic and uvicorn
(~20 MB of RSS).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgecv.api.app import create_app
    from edgecv.api.metrics import Metrics
    from edgecv.api.server import ApiServer, make_server

__all__ = ["ApiServer", "Metrics", "create_app", "make_server"]

_WHERE = {
    "ApiServer": "edgecv.api.server",
    "Metrics": "edgecv.api.metrics",
    "create_app": "edgecv.api.app",
    "make_server": "edgecv.api.server",
}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
