"""Run a real agent (in a thread or a subprocess) against a real inbox, and wait on the real job log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from edgecv.agent import Agent
from edgecv.store import Store


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class AgentThread:
    """``with AgentThread(config) as agent:`` runs Agent.run() in a thread until the block ends."""

    def __init__(self, config) -> None:
        self.config = config
        self.ready = threading.Event()
        self.agent = Agent(config, on_ready=lambda _a: self.ready.set())
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.agent.run()
        except BaseException as exc:  # surfaced in __exit__
            self.error = exc
            self.ready.set()

    def __enter__(self) -> AgentThread:
        self.thread.start()
        assert self.ready.wait(60), "agent did not become ready"
        if self.error:
            raise self.error
        self.store = Store(self.config.db_path)
        return self

    def __exit__(self, *exc) -> None:
        self.agent.request_stop()
        self.thread.join(60)
        self.store.close()
        assert not self.thread.is_alive(), "agent did not stop"
        if self.error:
            raise self.error

    def done_jobs(self) -> list:
        jobs, _ = self.store.list_jobs(limit=1000)
        return [j for j in jobs if j.done]
