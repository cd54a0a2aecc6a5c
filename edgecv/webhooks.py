"""Signed webhooks: Standard Webhooks signing/verification and the delivery loop.

Signing (https://www.standardwebhooks.com): each request carries ``webhook-id`` (the delivery id, the
same on every retry, so receivers can de-duplicate), ``webhook-timestamp`` (unix seconds of this
attempt) and ``webhook-signature: v1,<base64 HMAC-SHA256>`` over ``"{id}.{timestamp}.{body}"`` with the
base64-decoded part of the ``whsec_…`` secret as key.

Delivery rows are written by the store in the transaction that finishes a job; :class:`Dispatcher`
sends what is due, records every attempt on the row and retries with capped exponential backoff and
jitter. Because the schedule lives in SQLite, retries continue across restarts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import secrets
import threading
import time
from collections.abc import Mapping
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from edgecv.config import WebhookSettings
from edgecv.errors import ConfigError, WebhookVerificationError
from edgecv.store import Store
from edgecv.store import webhooks as webhook_sql
from edgecv.store.webhooks import EVENTS, WebhookDelivery

log = logging.getLogger(__name__)

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
            "webhook secret must be whsec_<base64>; make one with edgecv.webhooks.generate_secret()"
        ) from None


def check_secret(secret: str) -> None:
    """Raise ConfigError unless ``secret`` is ``whsec_<base64>`` of at least 16 bytes."""
    if not secret.startswith(SECRET_PREFIX) or len(_secret_key(secret)) < 16:
        raise ConfigError(
            "webhook secret must be whsec_<base64 of at least 16 bytes>; "
            "make one with python -c 'import edgecv.webhooks as w; print(w.generate_secret())'"
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


def retry_delay(attempts: int, base_s: float, max_s: float) -> float:
    """Delay before the next try after ``attempts`` failed ones: capped doubling, jitter in [½, 1]."""
    capped = min(max_s, base_s * (2 ** max(0, attempts - 1)))
    return capped * random.uniform(0.5, 1.0)


class Dispatcher:
    """Sends due webhook deliveries. ``run_once()`` is one pass; ``run_forever(stop)`` loops.

    Endpoints are independent: a pass hands each endpoint's due deliveries, oldest first, to one task
    of a small thread pool (``workers`` endpoints at a time), so a receiver that hangs until
    ``timeout_s`` delays only its own deliveries. Later passes skip an endpoint whose task is still
    running: this process never sends one endpoint two requests at once, and sends its deliveries in
    the order they became due.

    Construction syncs the endpoints listed in ``[webhooks]`` into the database, so completions that
    happen after it get delivery rows for them.
    """

    def __init__(
        self,
        store: Store,
        settings: WebhookSettings,
        *,
        batch: int = 20,
        poll_s: float = 1.0,
        session: requests.Session | None = None,
        workers: int = 4,
    ) -> None:
        self.store = store
        self.settings = settings
        self.batch = batch
        self.poll_s = poll_s
        self.workers = workers
        self._session = session  # shared by the pool's threads when given; else one per thread
        self._sessions = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="edgecv-webhook")
        self._sending: dict[str, Future[None]] = {}  # endpoint id → its task of the latest pass
        self.sync_config()

    def sync_config(self) -> None:
        settings = self.settings
        unknown = [e for e in settings.events if e not in EVENTS]
        if unknown:
            raise ConfigError(f"webhooks.events: unknown {unknown}; known: {', '.join(EVENTS)}")
        if settings.endpoints and not settings.secret:
            raise ConfigError(
                "webhooks.secret is required when webhooks.endpoints is set; make one with "
                "python -c 'import edgecv.webhooks as w; print(w.generate_secret())'"
            )
        for url in settings.endpoints:
            check_url(url)
        if settings.secret:
            check_secret(settings.secret)
        webhook_sql.sync_config_endpoints(
            self.store, list(settings.endpoints), settings.secret or "", settings.events
        )

    def run_once(self, now: float | None = None, *, wait: bool = True) -> int:
        """Claim the deliveries due now and send them, one pool task per endpoint; return how many were
        claimed. ``wait=False`` returns without waiting for the sends (``run_forever`` does)."""
        self._sending = {e: task for e, task in self._sending.items() if not task.done()}
        if len(self._sending) >= self.workers:
            return 0  # every worker is busy: claim nothing that would only wait in the pool's queue
        lease = self.settings.timeout_s + 30
        due = webhook_sql.claim_due(
            self.store, limit=self.batch, lease_s=lease, now=now, skip_endpoints=self._sending
        )
        by_endpoint: dict[str, list[WebhookDelivery]] = {}
        for delivery in due:
            by_endpoint.setdefault(delivery.endpoint_id, []).append(delivery)
        for endpoint_id, deliveries in by_endpoint.items():
            self._sending[endpoint_id] = self._pool.submit(self._send_in_order, deliveries)
        if wait:
            futures.wait(self._sending.values())
        return len(due)

    def run_forever(self, stop: threading.Event) -> None:
        log.info("webhook dispatcher started")
        try:
            while not stop.is_set():
                try:
                    sent = self.run_once(wait=False)
                except Exception:  # a bad pass must not end the loop
                    log.exception("webhook dispatch pass failed; retrying")
                    sent = 0
                if sent < self.batch:
                    stop.wait(self.poll_s)
        finally:
            self.close()
        log.info("webhook dispatcher stopped")

    def close(self) -> None:
        """Wait for the sends in flight (each ends within ``timeout_s``); drop the queued ones (their
        deliveries stay pending and are claimed again once their lease ends)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _http(self) -> requests.Session:
        if self._session is not None:
            return self._session
        session = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = requests.Session()
        return session

    def _send_in_order(self, deliveries: list[WebhookDelivery]) -> None:
        for delivery in deliveries:
            try:
                self._send(delivery)
            except Exception:  # e.g. the database: the delivery is retried once its lease ends
                log.exception(
                    "webhook %s to %s: attempt failed; retried after the lease", delivery.id, delivery.url
                )

    def _send(self, delivery: WebhookDelivery) -> None:
        body = delivery.payload.encode()
        headers = {"content-type": "application/json", "user-agent": "edgecv-webhooks"}
        headers.update(signature_headers(delivery.secret, delivery.id, body))
        status: int | None = None
        try:
            resp = self._http().post(
                delivery.url,
                data=body,
                headers=headers,
                timeout=self.settings.timeout_s,
                allow_redirects=False,
            )
            status = resp.status_code
            if 200 <= status < 300:
                webhook_sql.mark_delivered(self.store, delivery.id, status)
                log.info(
                    "webhook %s (%s, job %s) delivered: %d",
                    delivery.id,
                    delivery.event,
                    delivery.job_id,
                    status,
                )
                return
            error = f"HTTP {status}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = delivery.attempts + 1
        if attempts >= self.settings.max_attempts or status == 410:
            log.warning(
                "webhook %s to %s gave up after %d attempts: %s", delivery.id, delivery.url, attempts, error
            )
            next_at = None
        else:
            delay = retry_delay(attempts, self.settings.backoff_base_s, self.settings.backoff_max_s)
            next_at = time.time() + delay
            log.info(
                "webhook %s to %s failed (%s); retry %d in %.1f s",
                delivery.id,
                delivery.url,
                error,
                attempts,
                delay,
            )
        webhook_sql.mark_attempt_failed(
            self.store, delivery.id, status=status, error=error, next_attempt_at=next_at
        )


def check_url(url: str) -> None:
    """Raise ConfigError unless ``url`` is an absolute http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"webhook URL must be an absolute http:// or https:// URL, got {url!r}")
