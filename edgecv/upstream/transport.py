"""HTTP transport to the tenant API: one keep-alive connection, a timeout on every socket step.

Stdlib ``http.client`` only: the relay runs on small devices and sends few, large requests, so one
connection that is re-opened once when the server closed it idle is all it needs.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from edgecv.errors import SyncNotConfigured, UpstreamUnreachable


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def error_text(self) -> str:
        try:
            err = (self.json() or {}).get("error") or {}
            return f"{err.get('code', 'error')}: {err.get('message', '')}".strip()
        except (ValueError, AttributeError):
            return self.body[:200].decode("utf-8", "replace")


class Transport:
    """HTTP/1.1 with one keep-alive connection (stdlib ``http.client``); every socket step has a timeout."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SyncNotConfigured(f"sync.url: expected http(s)://host[:port][/prefix], got {base_url!r}")
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout_s)

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        """One request; a stale keep-alive connection is retried once on a fresh one (requests here are
        idempotent). Raises UpstreamUnreachable on network errors and timeouts."""
        reused = self._conn is not None
        try:
            return self._request_once(method, path, body, headers)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected) as exc:
            if not reused:
                raise UpstreamUnreachable(f"{type(exc).__name__}: {exc}") from None
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamUnreachable(f"{type(exc).__name__}: {exc or 'timed out'}") from None
        try:
            return self._request_once(method, path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamUnreachable(f"{type(exc).__name__}: {exc or 'timed out'}") from None

    def _request_once(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        if self._conn is None:
            self._conn = self._connect()
        try:
            self._conn.request(method, self.prefix + path, body=body, headers=headers)
            resp = self._conn.getresponse()
            data = resp.read()
        except BaseException:
            self.close()
            raise
        if resp.will_close:
            self.close()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
