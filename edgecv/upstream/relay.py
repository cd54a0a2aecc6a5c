"""The outbox relay: pushes finished jobs' results (and images) to the tenant API.

The contract is ``sync/openapi.yaml``. One :class:`Relay` per agent, sharing the agent's one
:class:`~edgecv.upstream.budget.DiskBudget` with ingest::

    relay = Relay.from_config(store, config, budget=budget)
    threading.Thread(target=relay.run_forever, args=(stop_event,), daemon=True).start()

Each :meth:`Relay.run_once` reads up to ``batch_max_items`` pending outbox rows, posts them in batches
capped by count and bytes, and records the per-item replies in one transaction: ``created`` and
``duplicate`` mark the row ``sent``; ``rejected`` parks it with the reason. Nothing is deleted before an
acknowledgement, and a row's idempotency key never changes, so every retry is safe.

Failures: network errors, timeouts, 408/425/429/5xx → capped exponential backoff with full jitter, or the
server's ``Retry-After`` (seconds or HTTP date); 413 → split the batch; 400/422 for the whole batch →
bisect down to the offending item and park it; 401/403 → ``paused-auth`` until the API key changes
(:meth:`Relay.set_api_key`) or an occasional probe succeeds, without counting attempts.

Disk budget: the relay's hourly housekeeping asks the budget to clean (:meth:`DiskBudget.enforce`)
and saves its state for ``edgecv sync --status`` — see docs/sync.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edgecv import __version__
from edgecv.config import Config, PrivacySettings, SyncSettings
from edgecv.errors import PrivacyError, SyncNotConfigured, UpstreamUnreachable
from edgecv.ids import new_id
from edgecv.privacy import PRIVACY_HEADER, PrivacyFilter, privacy_header
from edgecv.records import utc_now
from edgecv.store import Store, outbox
from edgecv.store.outbox import Ack, ImageUpload, Parked
from edgecv.upstream.budget import DiskBudget
from edgecv.upstream.transport import Response, Transport
from edgecv.upstream.wire import Encoded, batch_body, encode_entry, parse_retry_after, split_by_bytes

log = logging.getLogger(__name__)

IDLE, SENDING, BACKING_OFF, PAUSED_AUTH, OFFLINE = "idle", "sending", "backing-off", "paused-auth", "offline"
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}
IMAGES_PER_ITERATION = 16
ITERATION_BUDGET_S = 1.0  # run_once returns after about this long on a long backlog
ENCODE_AHEAD_ITEMS = 2000  # per iteration spent waiting for the upstream


# -- the relay -------------------------------------------------------------------------------------


@dataclass
class SyncCounts:
    created: int = 0
    duplicate: int = 0
    rejected: int = 0
    images_uploaded: int = 0
    images_skipped: int = 0

    @property
    def acknowledged(self) -> int:
        return self.created + self.duplicate + self.rejected


def require_sync_url(settings: SyncSettings) -> None:
    """Raise SyncNotConfigured when ``sync.url`` is unset (check it before opening anything)."""
    if not settings.url:
        raise SyncNotConfigured("sync.url is not set; set [sync] url in edgecv.toml or EDGECV_SYNC_URL")


def resolve_device_id(store: Store, settings: SyncSettings) -> str:
    """``sync.device_id``, else one derived once and kept in the job log's settings."""
    return settings.device_id or store.set_setting_once("device_id", new_id("dev"))


class Relay:
    """Pushes the outbox to the tenant API. ``run_once`` is one iteration; ``run_forever`` loops it."""

    def __init__(
        self,
        store: Store,
        settings: SyncSettings,
        *,
        tenant_id: str,
        data_dir: Path,
        budget: DiskBudget | None = None,
        transport: Transport | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,  # backoff never follows a stepped system clock
        privacy: PrivacyFilter | None = None,
    ) -> None:
        require_sync_url(settings)
        # faces in uploaded images: blurred unless the config says "off" (the safe default here too)
        self.privacy = privacy or PrivacyFilter(PrivacySettings())
        self.store, self.settings, self.tenant_id, self.data_dir = store, settings, tenant_id, Path(data_dir)
        self.transport = transport or Transport(settings.url, settings.timeout_s)
        self.device_id = resolve_device_id(store, settings)
        self.budget = budget
        self.counts = SyncCounts()
        self._rng = rng or random.Random()
        self._clock = clock
        self._lock = threading.Lock()
        self.state = IDLE
        self.online: bool | None = None
        self.last_error: str | None = None
        self.last_error_at: str | None = None
        self.last_success_at: str | None = None
        self._streak = 0
        self._backoff_until = 0.0
        self._paused_key: str | None = None
        self._next_housekeeping = 0.0
        self._saved: dict[str, Any] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._prefetched: Future[list[Encoded]] | None = None
        self._recording: list[Future[None]] = []
        self._results_path = f"/v1/tenants/{quote(tenant_id, safe='')}/sync/results"
        self._images_path = f"/v1/tenants/{quote(tenant_id, safe='')}/sync/images/"

    @classmethod
    def from_config(cls, store: Store, config: Config, **kwargs: Any) -> Relay:
        """The relay ``edgecv agent`` and ``edgecv sync`` run: settings, tenant and data dir from config.
        The agent passes its one ``budget`` (shared with ingest); without one the relay makes its own,
        which only a process without an agent's intake (``edgecv sync``) should rely on."""
        kwargs.setdefault("budget", DiskBudget.from_config(store, config))
        kwargs.setdefault("privacy", PrivacyFilter(config.privacy))
        return cls(store, config.sync, tenant_id=config.tenant_id, data_dir=config.data_dir, **kwargs)

    # -- public -----------------------------------------------------------------------------------

    def set_api_key(self, api_key: str | None) -> None:
        """New credentials: a relay paused on 401/403 resumes at its next iteration."""
        with self._lock:
            self.settings.api_key = api_key

    def run_forever(self, stop_event: threading.Event) -> None:
        """Loop :meth:`run_once` until ``stop_event`` is set. One failing iteration never ends the loop."""
        log.info(
            "sync relay started: %s as device %s (tenant %s)",
            self.settings.url,
            self.device_id,
            self.tenant_id,
        )
        try:
            while not stop_event.is_set():
                try:
                    delay = self.run_once()
                except Exception:  # log it, keep the relay alive
                    log.exception(
                        "sync relay iteration failed; retrying in %.1fs", self.settings.poll_interval_s
                    )
                    delay = self.settings.poll_interval_s
                stop_event.wait(delay)
        finally:
            self.close()
            log.info("sync relay stopped")

    def run_once(self) -> float:
        """One iteration. Returns seconds until the next iteration is worth running (0 = more is ready)."""
        try:
            return self._iterate()
        finally:
            self._finish_recording()
            self._save_status()

    def _finish_recording(self) -> None:
        """Wait for acknowledgements written in the background; re-raise the first failure."""
        pending, self._recording = self._recording, []
        for future in pending:
            future.result()

    def report(self) -> dict[str, Any]:
        """State for the CLI, metrics and the local API: state, last error, backlog, disk."""
        backlog = outbox.backlog(self.store)
        return {
            "state": self.state,
            "online": self.online,
            "lastError": self.last_error,
            "lastErrorAt": self.last_error_at,
            "lastSuccessAt": self.last_success_at,
            "backoffUntil": self._backoff_iso(),
            "deviceId": self.device_id,
            "backlog": backlog.to_dict(),
            "counts": dataclasses.asdict(self.counts),
        }

    # -- one iteration ----------------------------------------------------------------------------

    def _iterate(self) -> float:
        now = self._clock()
        self._housekeeping(now)
        if self.state == PAUSED_AUTH:
            if self.settings.api_key != self._paused_key:
                log.info("sync credentials changed; resuming")
            elif now < self._backoff_until:
                return min(self._backoff_until - now, self.settings.poll_interval_s)
        elif now < self._backoff_until:
            return self._wait_after_failure()
        deadline = now + ITERATION_BUDGET_S
        items = self._take_prefetched() or self._prepare(0)
        while items:
            self.state = SENDING
            full = len(items) >= self.settings.batch_max_items
            if full:  # encode the next window while the upstream works on this one
                self._prefetched = self._executor().submit(self._prepare, items[-1].outbox_id)
            if not self._deliver(items):
                self._prefetched = None
                return self._wait_after_failure()
            if not full:
                break
            if self._clock() >= deadline:
                return 0.0
            items = self._take_prefetched()
        if self.settings.image_policy != "none" and not self._send_images():
            return self._wait_after_failure()
        self.state = IDLE
        return self.settings.poll_interval_s

    def _prepare(self, after_id: int) -> list[Encoded]:
        """Up to ``batch_max_items`` pending entries after ``after_id``, ready for the wire: the stored
        encoding when there is one, else encoded now and stored (so retries never encode again)."""
        rows = outbox.pending_payloads(self.store, self.settings.batch_max_items, after_id)
        fresh = self._encode_and_store([oid for oid, _, _, payload in rows if payload is None])
        return [
            Encoded(oid, key, job_id, payload if payload is not None else fresh[oid])
            for oid, key, job_id, payload in rows
            if payload is not None or oid in fresh
        ]

    def _encode_and_store(self, outbox_ids: list[int]) -> dict[int, bytes]:
        if not outbox_ids:
            return {}
        entries = outbox.entries_by_id(self.store, outbox_ids)
        encoded = {e.outbox_id: encode_entry(e, self.device_id).body for e in entries}
        outbox.save_payloads(self.store, list(encoded.items()))
        return encoded

    def encode_ahead(self, limit: int = ENCODE_AHEAD_ITEMS) -> int:
        """Encode up to ``limit`` pending results that were never encoded (done while the upstream is
        down, so a long backlog goes out at wire speed when it comes back). Returns how many."""
        return len(self._encode_and_store(outbox.unencoded_ids(self.store, limit)))

    def _take_prefetched(self) -> list[Encoded]:
        future, self._prefetched = self._prefetched, None
        return future.result() if future is not None else []

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-prefetch")
        return self._pool

    def close(self) -> None:
        """Release the connection and the prefetch thread (``run_forever`` does this when it stops)."""
        self._prefetched = None
        self._finish_recording()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.transport.close()

    def _wait_after_failure(self) -> float:
        if self.state in (OFFLINE, BACKING_OFF):
            self.encode_ahead()
        return max(0.0, self._backoff_until - self._clock())

    def _housekeeping(self, now: float) -> None:
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + 3600.0
        cutoff = datetime.now(timezone.utc) - timedelta(days=self.settings.retention_days)
        forgotten = outbox.prune_sent(
            self.store, cutoff.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        if forgotten:
            log.info(
                "retention: forgot %d acknowledged outbox rows older than %d days",
                forgotten,
                self.settings.retention_days,
            )
        if self.budget is not None:
            self.budget.enforce()

    # -- results ----------------------------------------------------------------------------------

    def _deliver(self, items: list[Encoded]) -> bool:
        """Send ``items`` in byte-capped batches. False when a failure stopped sending."""
        for batch in split_by_bytes(items, self.settings.batch_max_items, self.settings.batch_max_bytes):
            if not self._post(batch):
                return False
        return True

    def _post(self, batch: list[Encoded]) -> bool:
        try:
            resp = self.transport.request("POST", self._results_path, batch_body(batch), self._headers())
        except UpstreamUnreachable as exc:
            self._transient(batch, f"upstream unreachable: {exc}", None, offline=True)
            return False
        if resp.status == 200:
            self._record(batch, resp)
            return True
        if resp.status in (400, 413, 422):
            return self._split_or_park(batch, resp)
        if resp.status in (401, 403):
            self._pause_auth([i.outbox_id for i in batch], resp)
            return False
        retry_after = parse_retry_after(resp.headers.get("retry-after"), time.time())
        self._transient(batch, f"HTTP {resp.status} from upstream: {resp.error_text()}", retry_after)
        return False

    def _split_or_park(self, batch: list[Encoded], resp: Response) -> bool:
        """413: the batch is too big; 400/422: something in it is refused. Halve until one item is left,
        then park that item with the server's reason; the rest goes on."""
        if len(batch) == 1:
            item = batch[0]
            reason = f"HTTP {resp.status}: {resp.error_text()}"
            log.warning("sync: parked result %s (%s)", item.job_id, reason)
            outbox.record_replies(self.store, [], [Parked(item.outbox_id, reason)], None)
            self.counts.rejected += 1
            return True
        log.info("sync: HTTP %d for a batch of %d; splitting it", resp.status, len(batch))
        middle = len(batch) // 2
        return self._post(batch[:middle]) and self._post(batch[middle:])

    def _record(self, batch: list[Encoded], resp: Response) -> None:
        by_key = {i.key: i for i in batch}
        acks: list[Ack] = []
        parked: list[Parked] = []
        for reply in (resp.json() or {}).get("results", []):
            entry = by_key.pop(reply.get("idempotencyKey"), None)
            if entry is None:
                continue
            if reply.get("status") in ("created", "duplicate"):
                acks.append(Ack(entry.outbox_id, reply.get("id")))
                setattr(self.counts, reply["status"], getattr(self.counts, reply["status"]) + 1)
            elif reply.get("status") == "rejected":
                parked.append(
                    Parked(entry.outbox_id, f"{reply.get('code', 'rejected')}: {reply.get('message', '')}")
                )
                log.warning("sync: upstream rejected result %s: %s", entry.job_id, parked[-1].reason)
        variant = None if self.settings.image_policy == "none" else self.settings.image_policy
        if self._pool is not None:  # write the acknowledgements while the next batch is on the wire
            self._recording.append(
                self._pool.submit(outbox.record_replies, self.store, acks, parked, variant)
            )
        else:
            outbox.record_replies(self.store, acks, parked, variant)
        self.counts.rejected += len(parked)
        if by_key:
            log.warning("sync: %d results got no reply; they stay pending", len(by_key))
        self._succeeded()

    # -- images -----------------------------------------------------------------------------------

    def _send_images(self) -> bool:
        for upload in outbox.pending_images(self.store, IMAGES_PER_ITERATION):
            if not self._send_image(upload):
                return False
        return True

    def _send_image(self, upload: ImageUpload) -> bool:
        from edgecv.upstream.images import image_bytes  # cv2 only when an image policy is on

        try:
            data, media_type, report = image_bytes(
                self.data_dir / upload.spool_path,
                upload.variant,
                upload.media_type,
                self.settings.thumbnail_max_px,
                self.privacy,
            )
        except PrivacyError as exc:  # never the original instead: this image stays on the device
            log.warning("sync: image of %s not uploaded: %s", upload.observation_id, exc)
            outbox.mark_image(self.store, upload.observation_id, "missing", sha256=None, error=str(exc))
            return True
        if data is None:
            outbox.mark_image(
                self.store, upload.observation_id, "missing", sha256=None, error="spool file is gone"
            )
            return True
        sha = hashlib.sha256(data).hexdigest()
        try:
            head = self.transport.request("HEAD", self._images_path + sha, None, self._headers())
            if head.status == 200:
                outbox.mark_image(
                    self.store, upload.observation_id, "sent", sha256=sha, error=None, privacy=report
                )
                self.counts.images_skipped += 1
                return True
            resp = (
                head
                if head.status != 404
                else self.transport.request(
                    "PUT", self._images_path + sha, data, self._headers(media_type, privacy=report)
                )
            )
        except UpstreamUnreachable as exc:
            return self._image_failed(upload, f"upstream unreachable: {exc}", None, offline=True)
        if resp.status in (200, 201):
            outbox.mark_image(
                self.store, upload.observation_id, "sent", sha256=sha, error=None, privacy=report
            )
            self.counts.images_uploaded += 1
            self._succeeded()
            return True
        if resp.status in (401, 403):
            self._pause_auth([], resp)
            return False
        retry_after = parse_retry_after(resp.headers.get("retry-after"), time.time())
        return self._image_failed(upload, f"HTTP {resp.status} for image: {resp.error_text()}", retry_after)

    def _image_failed(
        self, upload: ImageUpload, error: str, retry_after: float | None, offline: bool = False
    ) -> bool:
        outbox.mark_image(self.store, upload.observation_id, "pending", sha256=None, error=error)
        self._backoff(error, retry_after, offline)
        return False

    # -- state ------------------------------------------------------------------------------------

    def _headers(
        self, content_type: str = "application/json", *, privacy: dict[str, Any] | None = None
    ) -> dict[str, str]:
        headers = {
            "Content-Type": content_type,
            "User-Agent": f"edgecv/{__version__}",
            "X-Edgecv-Device": self.device_id,
        }
        if privacy is not None:
            headers[PRIVACY_HEADER] = privacy_header(privacy)
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    def _succeeded(self) -> None:
        if self.state != SENDING or self.online is not True:
            log.info("sync: upstream reachable")
        self.state, self.online, self._streak, self._backoff_until = SENDING, True, 0, 0.0
        self.last_success_at = utc_now()

    def _transient(
        self, batch: list[Encoded], error: str, retry_after: float | None, offline: bool = False
    ) -> None:
        outbox.record_failure(self.store, [i.outbox_id for i in batch], error, count_attempt=True)
        self._backoff(error, retry_after, offline)

    def _backoff(self, error: str, retry_after: float | None, offline: bool) -> None:
        self._streak += 1
        if retry_after is not None:
            delay = min(retry_after, self.settings.retry_after_max_s)
        else:
            cap = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** (self._streak - 1))
            delay = self._rng.uniform(0, cap)
        self._backoff_until = self._clock() + delay
        self.state, self.online = (OFFLINE, False) if offline else (BACKING_OFF, True)
        self._error(error)
        log.warning("sync: %s; retry %d in %.2fs", error, self._streak, delay)

    def _pause_auth(self, outbox_ids: list[int], resp: Response) -> None:
        error = (
            f"HTTP {resp.status} from upstream: the API key was refused ({resp.error_text()}). Fix sync.api_key "
            "(EDGECV_SYNC_API_KEY); sending resumes when it changes."
        )
        if outbox_ids:
            outbox.record_failure(self.store, outbox_ids, error, count_attempt=False)
        if self.state != PAUSED_AUTH:
            log.error("sync paused: %s", error)
        self._paused_key = self.settings.api_key
        self._backoff_until = self._clock() + self.settings.auth_probe_s
        self.state, self.online = PAUSED_AUTH, True
        self._error(error)

    def _error(self, error: str) -> None:
        self.last_error, self.last_error_at = error, utc_now()

    def _backoff_iso(self) -> str | None:
        left = self._backoff_until - self._clock()
        if left <= 0:
            return None
        return (
            datetime.fromtimestamp(time.time() + left, timezone.utc)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z")
        )

    def _save_status(self) -> None:
        status = {
            "state": self.state,
            "online": None if self.online is None else int(self.online),
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_success_at": self.last_success_at,
            "backoff_until": self._backoff_iso(),
        }
        if self.budget is not None:
            status["disk_used_bytes"] = self.budget.last_used
            status["disk_refusing"] = self.budget.refusing
        if status != self._saved:
            outbox.save_status(self.store, status)
            self._saved = status
