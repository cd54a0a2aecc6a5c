"""Kept hard images to the tenant API when online (``[hard_images] upload``), with their pre-labels.

Each ``hard_images`` row is its own outbox entry (``store/hard_images.py``): pending until the server
acknowledges it. One item at a time, oldest first:

1. the kept image through the privacy filter (faces blurred unless ``[privacy] faces = "off"``; an image
   that cannot be checked is parked, never sent as it is), then ``HEAD``/``PUT …/sync/images/{sha256}``
   exactly as the relay sends images;
2. ``POST …/sync/hard-images`` with the item: job id, model and version, why it was kept, the image's
   sha256, and the job's result as COCO pre-labels (:func:`edgecv.labels_export.coco_labels`). The key
   is ``<job id>:hard``; the server keeps the latest item per key (``created``, ``updated`` or
   ``duplicate``), so a resend is harmless and a new flag replaces the old item.

Network errors, 408/429/5xx: back off (capped exponential with full jitter, ``sync.backoff_*``); 401/403:
wait ``sync.auth_probe_s``; a rejected item is parked with the server's reason. Nothing is deleted: the
kept image stays on the device for ``edgecv export``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edgecv import __version__
from edgecv.config import Config
from edgecv.errors import PrivacyError, UpstreamUnreachable
from edgecv.labels_export import coco_labels
from edgecv.privacy import PRIVACY_HEADER, PrivacyFilter, privacy_header
from edgecv.records import Job, Observation
from edgecv.store import Store
from edgecv.store import hard_images as sql
from edgecv.upstream.images import image_bytes
from edgecv.upstream.relay import require_sync_url, resolve_device_id
from edgecv.upstream.transport import Transport

log = logging.getLogger(__name__)

PER_ROUND = 16


class HardImageUploader:
    """``run_once`` sends up to ``PER_ROUND`` pending kept images; it backs off by itself."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        transport: Transport | None = None,
        privacy: PrivacyFilter | None = None,
        clock=time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        require_sync_url(config.sync)
        self.store, self.config, self.settings = store, config, config.sync
        self.transport = transport or Transport(config.sync.url, config.sync.timeout_s)
        self.privacy = privacy or PrivacyFilter(config.privacy)
        self.device_id = resolve_device_id(store, config.sync)
        self._clock, self._rng = clock, rng or random.Random()
        self._streak, self._until = 0, 0.0
        self.last_error: str | None = None
        tenant = quote(config.tenant_id, safe="")
        self._images_path = f"/v1/tenants/{tenant}/sync/images/"
        self._items_path = f"/v1/tenants/{tenant}/sync/hard-images"

    def run_once(self) -> int:
        """Send what is pending (unless backing off). Returns how many items the server acknowledged."""
        if self._clock() < self._until:
            return 0
        sent = 0
        for kept, job, obs in sql.pending_uploads(self.store, PER_ROUND):
            try:
                if not self._send(kept, job, obs):
                    break
            except UpstreamUnreachable as exc:
                self._failed(f"upstream unreachable: {exc}")
                break
            sent += 1
        return sent

    def close(self) -> None:
        self.transport.close()

    # -- one item ----------------------------------------------------------------------------------

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        headers = {
            "Content-Type": content_type,
            "User-Agent": f"edgecv/{__version__}",
            "X-Edgecv-Device": self.device_id,
        }
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        return headers

    def _send(self, kept: sql.KeptImage, job: Job, obs: Observation) -> bool:
        """One item; False when sending must stop for now (the reason is recorded)."""
        try:
            data, media_type, report = image_bytes(
                self.config.data_dir / kept.path, "full", obs.media_type, 0, self.privacy
            )
        except PrivacyError as exc:  # never the original instead
            sql.mark_upload(self.store, kept.job_id, kept.revision, "parked", f"privacy check failed: {exc}")
            return True
        if data is None:
            sql.mark_upload(self.store, kept.job_id, kept.revision, "parked", "the kept image is gone")
            return True
        sha = hashlib.sha256(data).hexdigest()
        head = self.transport.request("HEAD", self._images_path + sha, None, self._headers())
        if head.status == 404:
            headers = {**self._headers(media_type), PRIVACY_HEADER: privacy_header(report or {})}
            head = self.transport.request("PUT", self._images_path + sha, data, headers)
        if head.status not in (200, 201):
            return self._refused(kept, head.status, head.error_text(), head.headers.get("retry-after"))
        item = self._item(kept, job, obs, sha, media_type)
        resp = self.transport.request(
            "POST", self._items_path, json.dumps({"items": [item]}).encode(), self._headers()
        )
        if resp.status != 200:
            return self._refused(kept, resp.status, resp.error_text(), resp.headers.get("retry-after"))
        reply = next(iter((resp.json() or {}).get("results") or []), {})
        if reply.get("status") in ("created", "updated", "duplicate"):
            sql.mark_upload(self.store, kept.job_id, kept.revision, "sent", None)
        else:
            reason = f"{reply.get('code', 'rejected')}: {reply.get('message', '')}"
            log.warning("hard image of %s rejected upstream: %s", kept.job_id, reason)
            sql.mark_upload(self.store, kept.job_id, kept.revision, "parked", reason)
        self._streak, self._until, self.last_error = 0, 0.0, None
        return True

    def _item(
        self, kept: sql.KeptImage, job: Job, obs: Observation, sha: str, media_type: str
    ) -> dict[str, Any]:
        name = f"{obs.id}{'.jpg' if media_type == 'image/jpeg' else Path(kept.path).suffix}"
        return {
            "idempotencyKey": f"{kept.job_id}:hard",
            "deviceId": self.device_id,
            "jobId": kept.job_id,
            "observationId": obs.id,
            "model": job.model,
            "modelVersion": job.model_version,
            "reason": kept.reason,
            "classKey": kept.class_key,
            "detail": kept.detail,
            "keptAt": kept.kept_at,
            "image": {"sha256": sha, "mediaType": media_type},
            "labels": coco_labels(job.result, obs.width, obs.height, name),
        }

    def _refused(self, kept: sql.KeptImage, status: int, text: str, retry_after: str | None) -> bool:
        if status in (400, 413, 422):
            sql.mark_upload(self.store, kept.job_id, kept.revision, "parked", f"HTTP {status}: {text}")
            return True
        if status in (401, 403):
            self._until = self._clock() + self.settings.auth_probe_s
            self.last_error = f"HTTP {status}: the API key was refused ({text}); fix sync.api_key"
            log.error("hard-image upload paused: %s", self.last_error)
            return False
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        self._failed(f"HTTP {status}: {text}", seconds)
        return False

    def _failed(self, error: str, retry_after: float | None = None) -> None:
        self._streak += 1
        cap = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** (self._streak - 1))
        delay = (
            min(retry_after, self.settings.retry_after_max_s)
            if retry_after is not None
            else self._rng.uniform(0, cap)
        )
        self._until = self._clock() + delay
        self.last_error = error
        log.warning("hard-image upload: %s; retry in %.1fs", error, delay)
