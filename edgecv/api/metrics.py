"""Prometheus metrics for the agent: one registry per process, scraped at ``/metrics``.

The worker reports inference latency with :meth:`Metrics.observe_inference`; everything else (jobs by
status, queue depth, sync and webhook backlog) is read from the store at scrape time, so the figures
are right even for work done by another process on the same data dir.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edgecv.store import Store
from edgecv.store.counts import jobs_by_status, outbox_by_state
from edgecv.store.counts import webhook_backlog as count_webhook_backlog

log = logging.getLogger(__name__)

# Milliseconds: CPU/NPU detectors on small boxes span ~5 ms to a few seconds.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _StoreCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        try:
            counts = jobs_by_status(self.store)
            sync_backlog = outbox_by_state(self.store)["pending"]
            webhook_backlog = count_webhook_backlog(self.store)
        except Exception:  # a scrape must never take the API down
            log.exception("reading metrics from the store failed")
            return
        jobs = GaugeMetricFamily("edgecv_jobs", "Jobs in the job log by status.", labels=["status"])
        for status, count in counts.items():
            jobs.add_metric([status], count)
        yield jobs
        yield GaugeMetricFamily(
            "edgecv_queue_depth", "Jobs queued and not yet claimed.", value=counts["queued"]
        )
        yield GaugeMetricFamily(
            "edgecv_sync_backlog", "Finished jobs not yet acknowledged by the tenant API.", value=sync_backlog
        )
        yield GaugeMetricFamily(
            "edgecv_webhook_backlog",
            "Webhook deliveries pending (first try or retry).",
            value=webhook_backlog,
        )


class Metrics:
    """The agent's metrics registry. Create one per process and pass it to the worker and the API."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, store: Store | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.inference_latency = Histogram(
            "edgecv_inference_latency_seconds",
            "Model inference time per image (pre- and post-processing excluded).",
            labelnames=["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self._store_collector: _StoreCollector | None = None
        if store is not None:
            self.bind_store(store)

    def bind_store(self, store: Store) -> None:
        """Read job, queue and backlog figures from ``store`` (once; later calls are ignored)."""
        if self._store_collector is None:
            self._store_collector = _StoreCollector(store)
            self.registry.register(self._store_collector)

    def observe_inference(self, ms: float, model: str = "") -> None:
        """Record one inference that took ``ms`` milliseconds."""
        self.inference_latency.labels(model=model).observe(ms / 1000.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
