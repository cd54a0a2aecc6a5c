"""Run the API with uvicorn, in the calling thread (``serve_forever``) or a background one (``start``)."""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from edgecv.api.app import create_app
from edgecv.api.auth import check_bind
from edgecv.api.metrics import Metrics
from edgecv.api.state import ModelsProvider
from edgecv.config import Config
from edgecv.errors import ConfigError, PortInUse
from edgecv.privacy import PrivacyFilter
from edgecv.store import Store
from edgecv.threads import start_thread
from edgecv.upstream.budget import DiskBudget

log = logging.getLogger(__name__)


BAD_REQUEST_BODY = json.dumps(
    {
        "error": {
            "code": "bad_request",
            "message": "the request line or a header is not valid HTTP/1.1; percent-encode non-ASCII and "
            "control bytes in the path (é as %C3%A9). The request was not processed.",
        }
    }
).encode()


class JsonErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, except that a request h11 cannot parse (raw non-ASCII bytes in the path, a
    malformed header) gets the API's ``{"error": …}`` JSON instead of uvicorn's text/plain 400.

    uvicorn answers these itself, before the app sees anything, through ``send_400_response``."""

    def send_400_response(self, msg: str) -> None:
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BAD_REQUEST_BODY)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=BAD_REQUEST_BODY),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event))
        self.transport.close()


class ApiServer:
    """One uvicorn server for the local API.

    Either ``serve_forever()`` (blocks; in the main thread it also handles SIGINT/SIGTERM) and
    ``shutdown()`` from elsewhere, or ``start()`` (returns once the socket listens) and ``stop()``.
    """

    def __init__(self, config: Config, app, *, host: str, port: int) -> None:
        self.config = config
        self.app = app
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                http=JsonErrorH11Protocol,
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                server_header=False,
                timeout_graceful_shutdown=5,
            )
        )
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when the config asked for port 0)."""
        servers = getattr(self._server, "servers", None) or []
        for server in servers:
            for sock in server.sockets:
                return sock.getsockname()[1]
        return self._server.config.port

    @property
    def url(self) -> str:
        host = self._server.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def serve_forever(self) -> None:
        log.info("API listening on %s:%s", self._server.config.host, self._server.config.port)
        self._server.run()

    def shutdown(self) -> None:
        self._server.should_exit = True

    def start(self, timeout_s: float = 10.0) -> None:
        """Serve in a daemon thread; return when listening, or raise ConfigError if it could not bind."""

        def run() -> None:
            try:
                self._server.run()
            except BaseException as exc:  # SystemExit from a failed bind, too
                self._error = exc

        self._thread = start_thread("edgecv-api", run)
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(
                    f"the API could not listen on {self._server.config.host}:{self._server.config.port} "
                    f"({self._error or 'timed out'}); is the port in use? Change api.port."
                )
            time.sleep(0.01)
        log.info("API listening on %s", self.url)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUse when ``host:port`` is taken (uvicorn would log a bare bind error and exit), or
    ConfigError when the address cannot be bound at all. Port 0 (any free port) always passes."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"api.host: cannot resolve {host!r} ({exc.strerror})", key="api.host") from None
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port in use: {host}:{port} (another edgecv agent or `edgecv serve`?); "
                    "stop it, or choose another port (api.port)",
                    host=host,
                    port=port,
                ) from None
            raise ConfigError(
                f"the API cannot listen on {host}:{port} ({exc.strerror}); check api.host", key="api.host"
            ) from None


def make_server(
    config: Config,
    store: Store,
    *,
    metrics: Metrics | None = None,
    models: ModelsProvider | None = None,
    host: str | None = None,
    port: int | None = None,
    budget: DiskBudget | None = None,
    privacy: PrivacyFilter | None = None,
) -> ApiServer:
    """The local API for ``config`` over ``store``. Raises ConfigError for a non-loopback bind without
    an ``api.token``. ``host``/``port`` override ``config.api`` (port 0 = any free port)."""
    host = config.api.host if host is None else host
    port = config.api.port if port is None else port
    settings = type(config.api)(**{**config.api.__dict__, "host": host, "port": port})
    check_bind(settings)
    check_port_free(host, port)
    app = create_app(config, store, metrics=metrics, models=models, budget=budget, privacy=privacy)
    return ApiServer(config, app, host=host, port=port)
