"""``edgecv agent``: watcher + intake + workers (+ sync relay, local API, webhooks) in one process.

Signal handlers only set a flag. On SIGINT/SIGTERM the watcher stops taking files, each worker
finishes the job in hand, and the process exits cleanly; a second signal exits at once. One agent
per data dir (an exclusive lock).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgecv.clock import ClockWatch
from edgecv.config import Config
from edgecv.errors import AgentLocked, ConfigError, EdgecvError
from edgecv.ingest import recover_spool
from edgecv.paths import ensure_writable_dir
from edgecv.runtime.engines import Engines
from edgecv.runtime.installed import check_model_names
from edgecv.services import build_services
from edgecv.status import remove_agent_state, write_agent_state
from edgecv.store import Store
from edgecv.store import webhooks as webhook_sql
from edgecv.store.counts import jobs_by_status
from edgecv.store.recovery import Rebuilt, open_checked
from edgecv.threads import name_os_thread, start_thread
from edgecv.upstream.budget import DiskBudget
from edgecv.watcher import InboxWatcher, Intake
from edgecv.work.backlog import backlog_hints
from edgecv.work.pool import DetectorPool
from edgecv.work.worker import Worker, WorkSignal

log = logging.getLogger(__name__)

GIL_SWITCH_S = 0.0005


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Exclusive, process-lifetime lock on the data dir (released by the kernel if we are killed)."""
    ensure_writable_dir(data_dir)
    fd = os.open(data_dir / "agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AgentLocked(
                f"another edgecv agent is running on {data_dir}; stop it or use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def check_startable(cfg: Config) -> None:
    """Refuse a config the agent would misuse: no inbox, a missing inbox (a typo would be watched
    forever), or a model name that is not installed (every image would become a failed job)."""
    if cfg.inbox is None:
        raise ConfigError("inbox: not set; pass --inbox DIR or set inbox in edgecv.toml", key="inbox")
    if not cfg.inbox.is_dir():
        problem = "is not a folder" if cfg.inbox.exists() else "does not exist"
        raise ConfigError(
            f"inbox: {cfg.inbox} {problem}; check the path, or create it first (mkdir -p {cfg.inbox})",
            key="inbox",
            value=str(cfg.inbox),
            hint="an existing folder",
        )
    check_model_names(cfg)


@dataclass
class Agent:
    config: Config
    stop_event: threading.Event = field(default_factory=threading.Event)
    on_ready: Callable[[Agent], None] | None = None
    once: bool = False  # stop once the inbox and the queue are empty (demos, cron-style runs)

    def __post_init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.signal = WorkSignal()
        self.store: Store | None = None
        self.rebuilt: Rebuilt | None = None  # set when the start-up check set a damaged job log aside
        self.watcher: InboxWatcher | None = None
        self.services: list = []  # objects with a stop() to call on shutdown
        self.metrics = None
        self.pools: list[DetectorPool] = []
        self.relay = None
        self.budget: DiskBudget | None = None  # the one disk-budget owner: ingest, API and relay ask it
        self.api_url: str | None = None  # where the local API listens, once it does

    def request_stop(self, *_args) -> None:
        self.stop_event.set()
        self.signal.notify()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame) -> None:
        """First SIGINT/SIGTERM: stop cleanly. A second one: exit at once, like SIGKILL (what is in hand
        goes back to the queue at the next start), instead of waiting up to ``lease_s`` per thread."""
        name = signal.Signals(signum).name
        if self.stop_event.is_set():
            log.warning("second %s: exiting now; jobs in hand are re-queued at the next start", name)
            os._exit(128 + signum)
        log.info("%s: stopping (send it again to exit at once)", name)
        self.request_stop()

    def run(self) -> None:
        """Run until :meth:`request_stop` (or a signal). Blocks."""
        cfg = self.config
        check_startable(cfg)
        # a thread back from C (a lane's decode or inference) waits at most this long for one running
        # Python (pipeline, JSON, SQLite) to hand over the GIL; the default is 5 ms. A shorter interval
        # gives lanes more throughput (measured: docs/performance.md)
        switch = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        try:
            with data_dir_lock(cfg.data_dir):
                self.store, self.rebuilt = open_checked(cfg.db_path, cfg.damaged_dir)
                try:
                    self._run(cfg)
                finally:
                    self.store.close()
                    remove_agent_state(cfg)
        finally:
            sys.setswitchinterval(switch)
        log.info("agent stopped")

    def _run(self, cfg: Config) -> None:
        store = self.store
        store.on_job_queued = self.signal.notify
        store.recover_jobs(cfg.max_attempts)
        self.budget = DiskBudget.from_config(store, cfg)
        recover_spool(store, cfg, budget=self.budget, requeue_jobless=self.rebuilt is not None)
        from edgecv.api import Metrics

        self.metrics = Metrics(store)
        self._start_services(cfg, store)
        write_agent_state(cfg, {}, api_url=self.api_url)
        name_os_thread("edgecv-infer")  # OpenVINO's threads, started while models load, inherit it
        pools = [self._preloaded_pool(cfg) for _ in range(cfg.workers)]
        engines = Engines.from_config(cfg)  # one set for every worker: loaded once, on first use
        name_os_thread("edgecv-main")
        for i, pool in enumerate(pools):
            worker = Worker(
                store,
                cfg,
                detectors=pool,
                engines=engines,
                signal=self.signal,
                name=f"worker-{i}",
                metrics=self.metrics,
            )
            self._thread(f"edgecv-worker-{i}", worker.run_forever, self.stop_event)
        self._thread("edgecv-lease-reaper", self._reap_expired_leases)
        intake = Intake(store, cfg, cfg.inbox, settle_s=cfg.settle_s if cfg.poll else 0.0, budget=self.budget)
        self.watcher = InboxWatcher(intake, poll=cfg.poll, poll_interval_s=cfg.poll_interval_s)
        self.watcher.start()
        log.info(
            "agent ready: data dir %s, %d worker(s), default model %s",
            cfg.data_dir,
            cfg.workers,
            cfg.default_model,
        )
        if self.on_ready is not None:
            self.on_ready(self)
        if self.once:
            self._stop_when_idle(intake)
        self.stop_event.wait()
        log.info("stopping: finishing the job in hand")
        self.watcher.stop()
        self.signal.notify()
        for service in self.services:
            with contextlib.suppress(Exception):
                service.stop()
        for thread in self.threads:
            thread.join(timeout=cfg.lease_s)

    def _stop_when_idle(self, intake: Intake) -> None:
        while not self.stop_event.wait(0.2):
            counts = jobs_by_status(self.store)
            if intake.idle() and counts["queued"] == 0 and counts["processing"] == 0:
                log.info(
                    "inbox and queue empty: %d completed, %d failed", counts["completed"], counts["failed"]
                )
                self.request_stop()

    def _preloaded_pool(self, cfg: Config) -> DetectorPool:
        """A worker's detectors, with the models it will surely need compiled before the agent is ready
        (so the first image does not pay for compilation). A model that fails to load is logged here and
        fails its jobs later with the same clear error."""
        pool = DetectorPool(cfg, backlog_of=self._model_backlog)
        if cfg.preload:
            for name in dict.fromkeys([cfg.default_model, *cfg.folders.values()]):
                try:
                    latency = pool.load(name)
                    if name == cfg.default_model and cfg.backlog_batch > 1:
                        for hint in backlog_hints(cfg, latency.device):  # the first backlog needs no compile
                            pool.load(name, hint=hint)
                except EdgecvError as exc:
                    log.warning("model %s not loaded: %s", name, exc)
        self.pools.append(pool)
        write_agent_state(cfg, {name: det for (name, _hint), det in pool.loaded().items()})
        return pool

    def _model_backlog(self, model: str) -> int:
        """Jobs of ``model`` queued or in hand (counted up to ``backlog_batch``): whether a backlog of it
        is big enough for its backlog compiles (see DetectorPool)."""
        return self.store.count_open(model, up_to=self.config.backlog_batch)

    def _thread(self, name: str, target: Callable, *args) -> threading.Thread:
        thread = start_thread(name, target, *args)
        self.threads.append(thread)
        return thread

    def _reap_expired_leases(self) -> None:
        watch = ClockWatch()
        while not self.stop_event.wait(max(5.0, self.config.lease_s / 4)):
            step = watch.step()
            if step:  # before reaping: a clock stepped forward must not make leases in hand look expired
                self._correct_for_clock_step(step)
            requeued, _ = self.store.recover_jobs(self.config.max_attempts, only_expired=True)
            if requeued:
                self.signal.notify()

    def _correct_for_clock_step(self, step: float) -> None:
        cfg = self.config
        leases = self.store.correct_leases(step, cfg.lease_s)
        horizon = max(cfg.webhooks.backoff_max_s, cfg.lease_s)
        retries = webhook_sql.correct_retry_times(self.store, step, horizon)
        log.warning(
            "the system clock was stepped by %+.0f s; corrected %d job lease(s) and %d webhook retry time(s)",
            step,
            leases,
            retries,
        )

    def _start_services(self, cfg: Config, store: Store) -> None:
        """Webhook delivery, the sync relay (when ``sync.url`` is set) and the local API."""
        services = build_services(
            cfg, store, metrics=self.metrics, budget=self.budget, api=cfg.api.enabled
        )  # the dispatcher before workers: completions get delivery rows
        self.threads += services.start_loops(self.stop_event)
        self.relay = services.relay
        if self.relay is not None:
            log.info("syncing results to %s", cfg.sync.url)
        else:
            log.info("sync.url not set: results stay in the local job log (`edgecv sync` pushes them later)")
        if services.api is not None:
            services.api.start()
            self.services.append(services.api)
            self.api_url = services.api.url
            log.info("local API on %s (dashboard at %s/)", services.api.url, services.api.url.rstrip("/"))
