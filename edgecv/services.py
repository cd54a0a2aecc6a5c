"""The agent's services around one job log: webhook delivery, the sync relay, MQTT and the local API.

``edgecv agent`` and ``edgecv serve`` build them here, the one place that knows how they fit together
(one :class:`~edgecv.api.metrics.Metrics`, one :class:`~edgecv.upstream.budget.DiskBudget` shared by
API uploads and the relay), so ``serve`` is the agent's composition with intake and workers left out
rather than a second, smaller agent. The heavy parts are imported only when asked for: an agent with
the API off never loads fastapi and uvicorn.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgecv.config import Config
from edgecv.paths import secure_data_dir
from edgecv.privacy import PrivacyFilter
from edgecv.retention import RetentionSweeper
from edgecv.store import Store
from edgecv.threads import start_thread
from edgecv.upstream.budget import DiskBudget

if TYPE_CHECKING:
    from edgecv.api.metrics import Metrics
    from edgecv.api.server import ApiServer
    from edgecv.hard_images import HardImages
    from edgecv.model_pull import ModelPuller
    from edgecv.mqtt import Publisher
    from edgecv.upstream.relay import Relay
    from edgecv.webhook_delivery import Dispatcher

log = logging.getLogger(__name__)


@dataclass
class Services:
    metrics: Metrics
    budget: DiskBudget
    dispatcher: Dispatcher | None = None
    relay: Relay | None = None
    api: ApiServer | None = None
    retention: RetentionSweeper | None = None
    mqtt: Publisher | None = None
    model_pull: ModelPuller | None = None
    hard_images: HardImages | None = None

    def start_loops(self, stop_event: threading.Event) -> list[threading.Thread]:
        """Run webhook delivery and the relay on their threads until ``stop_event``; the API is
        started by the caller (in the background for the agent, in the foreground for ``serve``)."""
        threads = []
        if self.dispatcher is not None:
            threads.append(start_thread("edgecv-webhooks", self.dispatcher.run_forever, stop_event))
        if self.relay is not None:
            threads.append(start_thread("edgecv-sync", self.relay.run_forever, stop_event))
        if self.retention is not None:
            threads.append(start_thread("edgecv-retention", self.retention.run_forever, stop_event))
        if self.mqtt is not None:
            threads.append(start_thread("edgecv-mqtt", self.mqtt.run_forever, stop_event))
        if self.model_pull is not None:
            threads.append(start_thread("edgecv-model-pull", self.model_pull.run_forever, stop_event))
        if self.hard_images is not None:
            threads.append(start_thread("edgecv-hard-images", self.hard_images.run_forever, stop_event))
        return threads


def build_services(
    config: Config,
    store: Store,
    *,
    metrics: Metrics | None = None,
    budget: DiskBudget | None = None,
    webhooks: bool = True,
    relay: bool = True,
    api: bool = True,
) -> Services:
    """The services ``config`` asks for, not started. ``relay`` needs ``sync.url`` (without it the
    relay is left out); the webhook dispatcher is built first, so that jobs finished from now on get
    delivery rows. Raises ConfigError (PortInUse for a busy API port) when one cannot be built.

    First the data dir is made private again (modes loosened by hand or by a copy are tightened)."""
    secure_data_dir(config.data_dir, skip=[config.inbox])
    if metrics is None:
        from edgecv.api.metrics import Metrics

        metrics = Metrics(store)
    services = Services(metrics, budget or DiskBudget.from_config(store, config))
    privacy = PrivacyFilter(config.privacy)  # one face model per process, opened when an image first leaves
    if webhooks:
        from edgecv.webhook_delivery import Dispatcher

        services.dispatcher = Dispatcher(store, config.webhooks)
    if relay and config.sync.url:
        from edgecv.upstream.relay import Relay

        services.relay = Relay.from_config(store, config, budget=services.budget, privacy=privacy)
    if relay and config.sync.url and config.model_pull.enabled:
        from edgecv.model_pull import ModelPuller

        services.model_pull = ModelPuller(store, config)
    upload = config.hard_images.upload and bool(config.sync.url)
    if relay and (config.hard_images.enabled or upload):  # the sampler: with the relay, one per job log
        from edgecv.hard_images import HardImages
        from edgecv.upstream.hard_upload import HardImageUploader

        uploader = HardImageUploader(store, config, privacy=privacy) if upload else None
        services.hard_images = HardImages(store, config, services.budget, uploader)
    sweeper = RetentionSweeper(store, config.data_dir, config.retention)
    if relay and sweeper.enabled:  # with the relay: the process that syncs is the one that removes
        services.retention = sweeper
    if relay:  # and the one that publishes MQTT events (when [mqtt] host is set)
        from edgecv.mqtt import build_publisher

        services.mqtt = build_publisher(store, config)
    if api:
        from edgecv.api import make_server

        services.api = make_server(config, store, metrics=metrics, budget=services.budget, privacy=privacy)
    return services
