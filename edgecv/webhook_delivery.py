"""Webhook delivery: the loop that sends signed ``job.completed`` / ``job.failed`` events.

Delivery rows are written by the store in the transaction that finishes a job
(:mod:`edgecv.store.webhooks` holds their SQL); :class:`Dispatcher` sends what is due, records every
attempt on the row and retries with capped exponential backoff and jitter. Because the schedule lives
in SQLite, retries continue across restarts. Signing is :mod:`edgecv.signing`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from edgecv.config import WebhookSettings
from edgecv.errors import ConfigError
from edgecv.signing import check_secret, signature_headers
from edgecv.store import Store
from edgecv.store import webhooks as webhook_sql
from edgecv.store.webhooks import EVENTS, WebhookDelivery

log = logging.getLogger(__name__)


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
                "python -c 'import edgecv.signing as s; print(s.generate_secret())'"
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
    """Raise ConfigError unless ``url`` is an absolute http(s) URL with a host and a valid port."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0..65535
    except ValueError as exc:
        raise ConfigError(f"webhook URL {url!r} cannot be parsed ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"webhook URL must be an absolute http:// or https:// URL, got {url!r}")
