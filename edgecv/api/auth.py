"""Who may talk to the local API: loopback without a token, anything else only with a bearer token;
never a web page on another site (Host and Origin checks against DNS rebinding and cross-site requests)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Collection
from urllib.parse import urlsplit

from edgecv.config import ApiSettings
from edgecv.errors import ConfigError

LOOPBACK_NAMES = ("localhost",)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})  # always allowed in Host and Origin


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: ApiSettings) -> None:
    """Refuse to serve a non-loopback address without a token (raise ConfigError saying how to fix it)."""
    if not is_loopback(settings.host) and not settings.token:
        raise ConfigError(
            f"api.host is {settings.host!r}, which other machines can reach, but no api.token is set. "
            "Set one (EDGECV_API_TOKEN or [api] token in edgecv.toml), or bind to 127.0.0.1."
        )
    if settings.token is not None and len(settings.token) < 16:
        raise ConfigError(
            "api.token must be at least 16 characters; generate one with `openssl rand -hex 24`"
        )


def token_matches(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>`` compared in constant time."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


SESSION_COOKIE = "edgecv_session"


def session_value(token: str) -> str:
    """The dashboard's session cookie for ``token``: derived from it (HMAC), so the cookie never holds the
    token itself, and changing ``api.token`` ends every session."""
    return hmac.new(token.encode(), b"edgecv dashboard session v1", hashlib.sha256).hexdigest()


def session_matches(cookie: str | None, token: str) -> bool:
    """Whether a session cookie was made from ``token`` (constant-time comparison)."""
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())


def host_name(authority: str) -> str | None:
    """The host of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``), lower-cased and
    without brackets; ``None`` when it is not a plain host[:port]."""
    if not authority or any(c in authority for c in "@/?#\\ "):
        return None
    try:
        parts = urlsplit(f"//{authority}")
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    return parts.hostname or None


def host_allowed(authority: str | None, extra: Collection[str]) -> bool:
    """Whether a ``Host`` header names this API: a loopback name or one of ``api.allowed_hosts``."""
    name = host_name(authority or "")
    return name is not None and (name in LOOPBACK_HOSTS or name in extra)


def cross_site_reason(origin: str | None, fetch_site: str | None, extra: Collection[str]) -> str | None:
    """Why a browser request comes from another site (``None`` if it does not): an ``Origin`` whose host
    is not an allowed host, or ``Sec-Fetch-Site: cross-site``."""
    if origin is not None:
        try:
            name = urlsplit(origin).hostname if origin != "null" else None
        except ValueError:
            name = None
        if name is None or not (name in LOOPBACK_HOSTS or name in extra):
            return f"Origin {origin!r}"
    if fetch_site is not None and fetch_site.strip().lower() == "cross-site":
        return "Sec-Fetch-Site: cross-site"
    return None
