"""Observation and Job records of the job log and their wire form (the CV Jobs API shape, camelCase).

The module is named ``records`` to keep these apart from the SDK's :class:`edgecv.client.Job` and
:class:`edgecv.client.Observation`, which are parsed API responses on a client's side: these are the
agent's own rows, written and read by :mod:`edgecv.store`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

JOB_STATUSES = ("queued", "processing", "completed", "failed")
ACTIVE_STATUSES = ("queued", "processing")


def check_wire_json(value: Any) -> None:
    """ValueError (saying why) unless ``value`` is standard JSON that the job log, the API and the
    upstream can carry: no NaN or Infinity (Python's ``json`` reads them, and ``1e999`` as infinity), no
    lone surrogate escapes such as ``"\\ud800"`` (not text; SQLite refuses them)."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except UnicodeError:
        raise ValueError("it holds a lone surrogate escape (\\ud800-\\udfff), which is not text") from None
    except RecursionError:
        raise ValueError("it nests objects/arrays too deep") from None
    except ValueError:
        raise ValueError("it holds NaN or Infinity (or a number too large for a double): not standard JSON") from None


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``: ``2026-11-28T15:08:00.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Observation:
    id: str
    sha256: str
    spool_path: str
    original_name: str
    media_type: str
    size_bytes: int
    width: int
    height: int
    metadata: dict[str, Any]
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sha256": self.sha256,
            "originalName": self.original_name,
            "mediaType": self.media_type,
            "sizeBytes": self.size_bytes,
            "width": self.width,
            "height": self.height,
            "metadata": self.metadata,
            "createdAt": self.created_at,
        }


@dataclass(frozen=True)
class Job:
    id: str
    observation_id: str
    model: str
    status: str
    attempts: int
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    inference_ms: float | None = None
    device: str | None = None
    model_version: str | None = None  # the package version it ran on (set on completion)
    lease_owner: str | None = field(default=None, compare=False)

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed")

    def to_dict(self) -> dict[str, Any]:
        """The job exactly as the API returns it (seed shape)."""
        return {
            "id": self.id,
            "status": self.status,
            "model": self.model,
            "modelVersion": self.model_version,
            "observationId": self.observation_id,
            "createdAt": self.created_at,
            "startedAt": self.started_at,
            "completedAt": self.completed_at,
            "error": {"code": self.error_code, "message": self.error_message} if self.error_code else None,
            "result": self.result,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)
