"""Keeping the images the models find hard, for labelling: the sampling policy, the sampler, user flags.

What counts as hard (``[hard_images] reasons``), read from a completed job's result:

- ``low_confidence``: a detection with confidence in ``[confidence_low, confidence_high)``;
- ``out_of_domain``: the scene check said the image is not the model's domain (``result.domain.inDomain``
  false);
- ``price_mismatch``: a price tag read that disagrees with the catalogue's ``expectedPrice``
  (``summary.mispricedSKUs``, or a detection's ``attributes.priceMatch`` false).

Of those, ``rate`` are kept (decided from the job id, so the same job always gets the same answer), at
most ``per_class_per_day`` per class (the detection's label, the mispriced SKU, or ``out_of_domain``)
per UTC day, and only while the kept images stay within their share of the disk
(:meth:`edgecv.upstream.budget.DiskBudget.may_keep`). Images a user flags (``edgecv jobs flag``,
``POST …/jobs/{id}/flag``) are kept whatever the policy, within the same disk share.

A kept image is a hard link to its spooled original (a copy where links are not possible) in
``<data dir>/hard/``, so retention and the disk budget may delete the spool copy without losing it;
the job log records why it was kept (``store/hard_images.py``). The sampler reads completed jobs
in completion order from a cursor, so it never touches the job path: the agent runs it on its own thread.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecv.config import Config, HardImagesSettings
from edgecv.errors import CannotKeep, JobNotFound
from edgecv.records import Job, Observation, utc_now
from edgecv.store import Store
from edgecv.store import hard_images as sql
from edgecv.upstream.budget import MIB, DiskBudget

log = logging.getLogger(__name__)

BATCH = 200
INTERVAL_S = 5.0


@dataclass(frozen=True)
class Hard:
    reason: str
    class_key: str
    detail: str


def hard_reasons(result: dict[str, Any] | None, settings: HardImagesSettings) -> list[Hard]:
    """Why a completed job's result is hard, most telling first (pure: the result dict in, reasons out)."""
    if not isinstance(result, dict):
        return []
    found: list[Hard] = []
    domain = result.get("domain")
    if "out_of_domain" in settings.reasons and isinstance(domain, dict) and domain.get("inDomain") is False:
        found.append(Hard("out_of_domain", "out_of_domain", f"scene score {domain.get('score')}"))
    detections = [d for d in result.get("detections") or [] if isinstance(d, dict)]
    if "price_mismatch" in settings.reasons:
        summary = result.get("summary") if isinstance(result.get("summary"), dict) else {}
        skus = list(summary.get("mispricedSKUs") or [])
        skus += [
            str(d.get("objectName"))
            for d in detections
            if isinstance(d.get("attributes"), dict) and d["attributes"].get("priceMatch") is False
        ]
        if skus:
            found.append(
                Hard("price_mismatch", str(skus[0]), f"price read differs from the catalogue: {skus[0]}")
            )
    if "low_confidence" in settings.reasons:
        band = [
            d
            for d in detections
            if isinstance(d.get("confidence"), (int, float))
            and settings.confidence_low <= d["confidence"] < settings.confidence_high
        ]
        if band:
            low = min(band, key=lambda d: d["confidence"])
            found.append(
                Hard(
                    "low_confidence",
                    str(low.get("objectName")),
                    f"confidence {low['confidence']:.2f} ({low.get('objectName')})",
                )
            )
    return found


def sampled(job_id: str, rate: float) -> bool:
    """Whether ``job_id`` falls within ``rate`` (the same answer for the same job, every time)."""
    if rate >= 1.0:
        return True
    value = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:8], "big") / 2**64
    return value < rate


def share_bytes(config: Config) -> int:
    """The kept images' share of the disk: ``max_mb``, and at most ``max_percent`` of the disk budget."""
    settings = config.hard_images
    return int(min(settings.max_mb * MIB, settings.max_percent / 100.0 * config.sync.disk_budget_mb * MIB))


class HardImages:
    """The sampler (``run_once`` / ``run_forever``) and user flags, around one job log and disk budget."""

    def __init__(
        self, store: Store, config: Config, budget: DiskBudget | None = None, uploader: Any = None
    ) -> None:
        self.store, self.config = store, config
        self.uploader = uploader  # an edgecv.upstream.hard_upload.HardImageUploader, or None
        self.budget = budget or DiskBudget.from_config(store, config)
        self.folder = config.hard_images_dir
        self.skipped: dict[str, int] = {}  # why hard images were not kept (rate, cap, disk, image gone)
        self.last_refusal: str | None = None

    # -- the sampler --------------------------------------------------------------------------------

    def run_forever(self, stop_event: threading.Event) -> None:
        """Sample (when ``enabled``) and upload (with an uploader) until ``stop_event``."""
        log.info(
            "hard images: sampling %s, upload %s",
            ", ".join(self.config.hard_images.reasons) if self.config.hard_images.enabled else "off",
            "on" if self.uploader is not None else "off",
        )
        try:
            while not stop_event.is_set():
                more = 0
                try:
                    if self.config.hard_images.enabled:
                        more = self.run_once()
                    if self.uploader is not None:
                        more = max(more, BATCH if self.uploader.run_once() >= 16 else 0)
                except Exception:  # log it, keep the loop alive
                    log.exception("hard-image round failed")
                stop_event.wait(0 if more >= BATCH else INTERVAL_S)
        finally:
            if self.uploader is not None:
                self.uploader.close()

    def run_once(self) -> int:
        """Look at the jobs completed since the last round; keep the hard ones. Returns jobs looked at."""
        jobs = sql.completed_since(self.store, sql.cursor(self.store), BATCH)
        for job, obs in jobs:
            for hard in hard_reasons(job.result, self.config.hard_images)[:1]:
                self._consider(job, obs, hard)
        if jobs:
            last = jobs[-1][0]
            sql.set_cursor(self.store, last.completed_at or "", last.id)
        return len(jobs)

    def _consider(self, job: Job, obs: Observation, hard: Hard) -> None:
        settings = self.config.hard_images
        if not sampled(job.id, settings.rate):
            self._skip("rate")
            return
        now = utc_now()
        cap = settings.per_class_per_day
        if cap and sql.kept_on(self.store, now[:10], hard.class_key) >= cap:
            self._skip("daily cap")
            return
        try:
            self._keep(job, obs, hard.reason, hard.class_key, hard.detail, now)
        except CannotKeep as exc:
            self._skip("no room" if "disk" in str(exc) or "share" in str(exc) else "image gone")
            self.last_refusal = str(exc)
            log.info("hard image of %s not kept: %s", job.id, exc)

    def _skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    # -- keeping ----------------------------------------------------------------------------------

    def _keep(
        self, job: Job, obs: Observation, reason: str, class_key: str, detail: str | None, now: str
    ) -> sql.KeptImage:
        source = self.config.data_dir / obs.spool_path
        if not source.is_file():
            raise CannotKeep(f"the image of job {job.id} is no longer on this device ({obs.spool_path})")
        size = source.stat().st_size
        _, kept_bytes = sql.totals(self.store)
        ok, why = self.budget.may_keep(kept_bytes, size, share_bytes(self.config))
        if not ok:
            raise CannotKeep(f"job {job.id}: {why}")
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / f"{obs.id}{Path(obs.spool_path).suffix.lower()}"
        _link_or_copy(source, target)
        image = sql.KeptImage(
            job.id,
            obs.id,
            reason,
            class_key,
            detail,
            str(target.relative_to(self.config.data_dir)),
            size,
            now,
            now[:10],
        )
        if not sql.keep(self.store, image):  # kept already (a flag raced the sampler): one record
            return sql.get(self.store, job.id) or image
        return image

    def flag(self, job_id: str, reason: str | None = None) -> sql.KeptImage:
        """``edgecv jobs flag ID``: keep a completed job's image for labelling, whatever the policy."""
        pair = sql.job_with_observation(self.store, job_id)
        if pair is None:
            raise JobNotFound(f"job {job_id} does not exist")
        job, obs = pair
        if job.status != "completed":
            raise CannotKeep(
                f"job {job_id} is {job.status}; only a completed job (an image with a result) can be flagged"
            )
        detail = (reason or "").strip()[:500] or None
        if sql.get(self.store, job_id) is not None:
            sql.mark_flagged(self.store, job_id, detail)
        else:
            self._keep(job, obs, "flagged", "flagged", detail, utc_now())
        kept = sql.get(self.store, job_id)
        assert kept is not None
        return kept


def _link_or_copy(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # another filesystem, or links not allowed: a copy
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)
