"""Helpers for the API, client and webhook tests: a live local API and jobs finished through the Store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edgecv.api import Metrics, make_server
from edgecv.ingest import ingest_bytes
from edgecv.records import Job
from helpers.images import distinct_jpeg

RESULT = {
    "detections": [
        {
            "objectName": "red-box",
            "confidence": 0.97,
            "boundingBox": {"x": 100, "y": 60, "width": 80, "height": 80},
            "attributes": {"facings": 1},
        }
    ],
    "summary": {"totalProducts": 1},
}


@contextmanager
def live_api(config, store, **kwargs) -> Iterator:
    server = make_server(config, store, metrics=kwargs.pop("metrics", None) or Metrics(), port=0, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def queued_job(store, config, i: int, model: str = "rect") -> Job:
    result = ingest_bytes(store, config, distinct_jpeg(i), name=f"img{i}.jpg", model=model)
    assert result.job is not None
    return result.job


def finish(store, job: Job, *, fail: bool = False) -> Job:
    """Claim exactly ``job`` and complete (or fail) it, as a worker would."""
    claimed = store.claim_job("test-worker", 60, job_id=job.id)
    assert claimed is not None and claimed.id == job.id
    if fail:
        return store.fail_job(
            job.id, "test-worker", "image_unreadable", "could not decode; re-export the image"
        )
    return store.complete_job(job.id, "test-worker", RESULT, inference_ms=12.5, device="CPU")


class Receiver:
    """A real webhook receiver on loopback: records every request, answers ``status``.

    With a ``gate``, it records each request, then holds its answer until the gate is set (a hanging
    receiver). ``arrived`` is set once a request was recorded, ``got`` once an answer was sent."""

    def __init__(self, port: int = 0, status: int = 200, gate: threading.Event | None = None) -> None:
        self.status = status
        self.gate = gate
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Event()
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                receiver.arrived.set()
                if receiver.gate is not None:
                    receiver.gate.wait(60)
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()
                receiver.got.set()

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.gate is not None:
            self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]
