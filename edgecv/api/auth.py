"""Who may talk to the local API: loopback without a token, anything else only with a bearer token."""

from __future__ import annotations

import hmac
import ipaddress

from edgecv.config import ApiSettings
from edgecv.errors import ConfigError

LOOPBACK_NAMES = ("localhost",)


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
