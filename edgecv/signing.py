"""Webhook signing and verification (Standard Webhooks, https://www.standardwebhooks.com).

Each request carries ``webhook-id`` (the delivery id, the same on every retry, so receivers can
de-duplicate), ``webhook-timestamp`` (unix seconds of this attempt) and ``webhook-signature:
v1,<base64 HMAC-SHA256>`` over ``"{id}.{timestamp}.{body}"`` with the base64-decoded part of the
``whsec_…`` secret as key.

A module of its own, with no store or config behind it, because both sides use it: the agent's
delivery loop (:mod:`edgecv.webhook_delivery`) signs, and the SDK (:mod:`edgecv.client`) verifies in
a receiver's process that has no job log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from edgecv.errors import ConfigError, WebhookVerificationError

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300


def generate_secret() -> str:
    """A new ``whsec_<base64 of 32 random bytes>`` secret."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_key(secret: str) -> bytes:
    body = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else secret
    try:
        return base64.b64decode(body, validate=True)
    except ValueError:
        raise ConfigError(
            "webhook secret must be whsec_<base64>; make one with edgecv.signing.generate_secret()"
        ) from None


def check_secret(secret: str) -> None:
    """Raise ConfigError unless ``secret`` is ``whsec_<base64>`` of at least 16 bytes."""
    if not secret.startswith(SECRET_PREFIX) or len(_secret_key(secret)) < 16:
        raise ConfigError(
            "webhook secret must be whsec_<base64 of at least 16 bytes>; "
            "make one with python -c 'import edgecv.signing as s; print(s.generate_secret())'"
        )


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The ``webhook-signature`` value: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    if isinstance(body, str):
        body = body.encode()
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: str, msg_id: str, body: bytes | str, timestamp: int | None = None
) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }


def verify(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise WebhookVerificationError if it is not genuine and fresh.

    ``headers`` may be any mapping (header names are matched case-insensitively). Pass the raw body
    exactly as received: re-serialised JSON will not match.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    stamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError(f"webhook-timestamp is not an integer: {stamp!r}") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        raise WebhookVerificationError(
            f"webhook-timestamp is {int(now - timestamp)} s away from now (tolerance {tolerance_s} s): "
            "a replay, or the clocks differ"
        )
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return
    raise WebhookVerificationError("no webhook-signature matches: wrong secret or a modified body")
