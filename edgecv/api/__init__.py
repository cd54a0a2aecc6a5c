"""The local tenant API (the CV Jobs API's paths), its metrics and its server.

``make_server(config, store, metrics=Metrics(store))`` → :class:`ApiServer` with ``start()``/``stop()``
(background thread) or ``serve_forever()``/``shutdown()``.
"""

from edgecv.api.app import create_app
from edgecv.api.metrics import Metrics
from edgecv.api.server import ApiServer, make_server

__all__ = ["ApiServer", "Metrics", "create_app", "make_server"]
