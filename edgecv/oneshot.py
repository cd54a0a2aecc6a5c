"""Process given files now, in this process, through the same job log the agent uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgecv.config import Config
from edgecv.errors import RejectedFile
from edgecv.ingest import find_sidecar, ingest_bytes, read_sidecar
from edgecv.paths import secure_data_dir
from edgecv.records import Job
from edgecv.store import Store
from edgecv.upstream.budget import DiskBudget
from edgecv.work.worker import Worker


@dataclass(frozen=True)
class Rejected:
    """A file that never became a job, and why."""

    path: Path
    code: str
    message: str

    def to_dict(self) -> dict:
        return {
            "file": str(self.path),
            "status": "rejected",
            "error": {"code": self.code, "message": self.message},
        }

    def line(self) -> str:
        return f"rejected    {self.code}: {self.message}"


def process_files(
    store: Store,
    config: Config,
    paths: list[Path],
    *,
    model: str,
    progress: Callable[[int], object] | None = None,
    wait_s: float = 600.0,
) -> list[Job | Rejected]:
    """Ingest each file (copying it; the original stays) and run its job; return jobs in input order.

    A file identical to one already processed returns the existing job. If another process (an
    agent on the same data dir) holds a job, this waits for it to finish.
    """
    secure_data_dir(config.data_dir, skip=[config.inbox])
    worker = Worker(store, config, name="oneshot")
    budget = DiskBudget.from_config(store, config)
    outcomes: list[Job | Rejected] = []
    for path in paths:
        outcomes.append(_one(store, config, worker, budget, path, model, wait_s))
        if progress is not None:
            progress(1)
    return outcomes


def _one(
    store: Store, config: Config, worker: Worker, budget: DiskBudget, path: Path, model: str, wait_s: float
) -> Job | Rejected:
    try:
        data = path.read_bytes()
        sidecar = find_sidecar(path)
        metadata = read_sidecar(sidecar) if sidecar else {}
        result = ingest_bytes(
            store, config, data, name=path.name, metadata=metadata, model=model, budget=budget
        )
    except RejectedFile as exc:
        return Rejected(path, exc.code, str(exc))
    except OSError as exc:
        return Rejected(path, "unreadable", f"cannot read {path}: {exc.strerror}")
    job = result.job
    claimed = store.claim_job(worker.owner, config.lease_s, job_id=job.id)
    if claimed is not None:
        return worker.process(claimed)
    deadline = time.monotonic() + wait_s
    while not (job := store.get_job(job.id)).done and time.monotonic() < deadline:
        time.sleep(0.05)
    return job
