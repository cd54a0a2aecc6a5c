"""File or bytes → observation + queued job: validate, hash, dedupe, sidecar metadata, spool.

Order of operations makes every step safe to repeat after a crash:
1. read and validate the bytes (quarantine what is not a usable image);
2. write them into the spool under their content hash (atomic rename; same bytes → same name);
3. insert observation + job in one transaction (identical bytes for the same model → existing job);
4. only then remove the file from the inbox.
A crash between any two steps leaves the file in the inbox, and the next attempt finds the same spool
file and the same job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecv.config import Config
from edgecv.errors import (
    DiskBudgetExceeded,
    DiskFull,
    EdgecvError,
    ImageUnreadable,
    RejectedFile,
    is_disk_full,
)
from edgecv.imageio import IMAGE_SUFFIXES, read_header
from edgecv.logging_setup import log_name
from edgecv.paths import tighten
from edgecv.records import Job, Observation, check_wire_json
from edgecv.store import Store
from edgecv.upstream.budget import DiskBudget

log = logging.getLogger(__name__)

TEMP_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial", ".download", ".swp", "~")
SIDECAR_SUFFIX = ".json"
# An incomplete image modified this recently is probably still being written: wait, don't quarantine.
INCOMPLETE_GRACE_S = 30.0


@dataclass(frozen=True)
class IngestResult:
    observation: Observation
    job: Job | None
    created: bool  # a new job was queued (False: identical bytes already had a job for this model)


class NotReady(EdgecvError):
    """Not now: the file is still being written, or the disk budget is full. It stays in the inbox and
    is tried again after ``retry_s`` (not an error; nothing is quarantined)."""

    code = "not_ready"

    def __init__(self, message: str, *, retry_s: float = 0.5) -> None:
        super().__init__(message)
        self.retry_s = retry_s


BUDGET_RETRY_S = 30.0
DISK_FULL_RETRY_S = 5.0  # a file that met a full disk is tried again this often (free space is measured)


# -- what counts as an inbox file ------------------------------------------------------------------


def is_ignored_name(name: str) -> bool:
    """Hidden files and temporary names never count."""
    lower = name.lower()
    return name.startswith(".") or lower.endswith(TEMP_SUFFIXES)


def is_image_name(name: str) -> bool:
    return not is_ignored_name(name) and Path(name).suffix.lower() in IMAGE_SUFFIXES


def is_sidecar_name(name: str) -> bool:
    return not is_ignored_name(name) and name.lower().endswith(SIDECAR_SUFFIX)


def sidecar_candidates(image: Path) -> list[Path]:
    """``photo.json`` and ``photo.jpg.json`` both describe ``photo.jpg``."""
    return [image.with_suffix(SIDECAR_SUFFIX), image.with_name(image.name + SIDECAR_SUFFIX)]


def images_for_sidecar(sidecar: Path) -> list[Path]:
    """Image paths a sidecar may belong to, existing ones only."""
    stem = sidecar.name[: -len(SIDECAR_SUFFIX)]
    direct = sidecar.with_name(stem)
    if is_image_name(direct.name) and direct.exists():
        return [direct]
    return sorted(
        p for p in sidecar.parent.glob(f"{_glob_escape(stem)}.*") if is_image_name(p.name) and p.exists()
    )


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


# -- the core: bytes in --------------------------------------------------------------------------


def validate_bytes(data: bytes, config: Config):
    """The ImageHeader of usable image bytes, or RejectedFile/NotReady saying why not."""
    if not data:
        raise RejectedFile("empty file (0 bytes)", code="empty_file")
    if len(data) > config.max_file_mb * 1024 * 1024:
        raise RejectedFile(
            f"file is {len(data) / 1e6:.1f} MB, over the max_file_mb limit of {config.max_file_mb}",
            code="file_too_large",
        )
    try:
        header = read_header(data)
    except ImageUnreadable as exc:
        raise RejectedFile(str(exc), code="not_an_image") from None
    if header.width <= 0 or header.height <= 0:
        raise RejectedFile(f"image header claims {header.width}×{header.height} pixels", code="not_an_image")
    if header.width * header.height > config.max_image_pixels:
        raise RejectedFile(
            f"image header claims {header.width}×{header.height} = {header.width * header.height} pixels, "
            f"over the max_image_pixels limit of {config.max_image_pixels} (decompression-bomb guard); "
            "downscale the image or raise max_image_pixels",
            code="too_many_pixels",
        )
    return header


def spool_file(
    config: Config, data: bytes, sha256: str, media_type: str, *, source: SourceFile | None = None
) -> str:
    """Put ``data`` at ``spool/ab/<sha256>.<ext>`` atomically; return the path relative to the data dir.

    With ``source`` (the inbox file the bytes were read from, on the same filesystem) the spool gets a
    hard link to it: no copy, no extra fsync (the saving: docs/performance.md). Otherwise the bytes are
    written to a temporary file, fsynced, and renamed into place.
    """
    ext = {"image/jpeg": ".jpg", "image/png": ".png", "image/bmp": ".bmp", "image/webp": ".webp"}[media_type]
    rel = Path("spool") / sha256[:2] / f"{sha256}{ext}"
    dest = config.data_dir / rel
    if not dest.exists():
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source is None or not _link(source, tmp):
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            else:
                tighten(tmp)  # a link shares the inbox file's mode: the spool is private (if the file is ours)
            os.replace(tmp, dest)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if is_disk_full(exc):
                raise DiskFull.writing("the spool", dest.parent) from None
            raise
    return rel.as_posix()


@dataclass(frozen=True)
class SourceFile:
    """An inbox file and the identity of the bytes read from it (to link only those very bytes)."""

    path: Path
    inode: int
    size: int
    mtime_ns: int


def _link(source: SourceFile, tmp: Path) -> bool:
    try:
        os.link(source.path, tmp, follow_symlinks=False)
    except OSError:  # another filesystem, links not supported, file gone: copy instead
        return False
    st = tmp.stat()
    if (st.st_ino, st.st_size, st.st_mtime_ns) != (source.inode, source.size, source.mtime_ns):
        tmp.unlink()  # the file changed after it was read: store the bytes that were hashed
        return False
    return True


def ingest_bytes(
    store: Store,
    config: Config,
    data: bytes,
    *,
    name: str,
    metadata: dict[str, Any] | None = None,
    model: str | None = None,
    source: SourceFile | None = None,
    budget: DiskBudget | None = None,
) -> IngestResult:
    """Validate image bytes, spool them, insert the observation and (when ``model``) a queued job.

    New bytes are spooled only when ``budget`` (the agent's one disk-budget owner) accepts them;
    without a budget nothing is limited (tests, tools). Raises RejectedFile (with a stable ``code``)
    when the bytes are not a usable image, DiskBudgetExceeded when the budget refuses them, DiskFull
    when the disk is full (less than ``min_free_mb`` free, or a write failed).
    """
    header = validate_bytes(data, config)
    if not header.complete:
        raise RejectedFile(
            f"{header.media_type} file is truncated (no end-of-image marker); send the complete file again",
            code="truncated",
        )
    sha256 = hashlib.sha256(data).hexdigest()
    existing = store.find_observation_by_hash(sha256)
    if existing is None and budget is not None:
        ok, reason = budget.may_accept_image(len(data))
        if not ok and budget.disk_full_reason is not None:
            raise DiskFull(budget.disk_full_reason)
        if not ok:
            raise DiskBudgetExceeded(reason or "the disk budget is full")
    rel = (
        existing.spool_path
        if existing
        else spool_file(config, data, sha256, header.media_type, source=source)
    )
    observation, job, created = store.add_observation(
        sha256=sha256,
        spool_path=rel,
        original_name=name,
        media_type=header.media_type,
        size_bytes=len(data),
        width=header.width,
        height=header.height,
        metadata=metadata or {},
        model=model,
    )
    if created:
        log.info("queued %s for %s (%s, model %s)", job.id, log_name(name), observation.id, model)
    elif job is not None:
        log.info(
            "%s is identical to %s; existing job %s (%s)", log_name(name), observation.id, job.id, job.status
        )
    return IngestResult(observation, job, created)


# -- files in the inbox ----------------------------------------------------------------------------


def for_folder(mapping: dict[str, Any], rel_path: Path) -> Any:
    """The value of the deepest ``mapping`` folder (relative to the inbox) that holds ``rel_path``."""
    best, depth = None, -1
    parents = rel_path.parent.parts
    for folder, value in mapping.items():
        parts = Path(folder).parts
        if parents[: len(parts)] == parts and len(parts) > depth:
            best, depth = value, len(parts)
    return best


def model_for(config: Config, rel_path: Path, metadata: dict[str, Any]) -> str:
    """Sidecar ``model``, then the deepest matching ``[folders]`` entry, then the default model."""
    if isinstance(metadata.get("model"), str) and metadata["model"]:
        return metadata["model"]
    return for_folder(config.folders, rel_path) or config.default_model


def planogram_for(config: Config, rel_path: Path) -> dict[str, Any] | None:
    """The ``[planograms]`` file for the deepest matching folder, parsed (None when none applies)."""
    path = for_folder(config.planograms, rel_path)
    if path is None:
        return None
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RejectedFile(
            f"planogram {path} for this folder cannot be read: {exc}", code="planogram_invalid"
        ) from None
    return value["planogram"] if isinstance(value, dict) and "planogram" in value else value


def read_sidecar(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_text(encoding="utf-8")
        value = json.loads(raw)
    except (OSError, UnicodeDecodeError) as exc:
        raise RejectedFile(f"sidecar {path.name} cannot be read: {exc}", code="sidecar_invalid") from None
    except json.JSONDecodeError as exc:
        raise RejectedFile(
            f"sidecar {path.name} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "fix it and drop the image and sidecar again",
            code="sidecar_invalid",
        ) from None
    except RecursionError:
        raise RejectedFile(
            f"sidecar {path.name} nests objects/arrays too deep to read", code="sidecar_invalid"
        ) from None
    try:
        check_wire_json(value)
    except ValueError as exc:
        raise RejectedFile(
            f"sidecar {path.name} cannot be used: {exc}; fix it and drop the image and sidecar again",
            code="sidecar_invalid",
        ) from None
    if not isinstance(value, dict):
        raise RejectedFile(
            f"sidecar {path.name} must hold a JSON object, got {type(value).__name__}", code="sidecar_invalid"
        )
    if "model" in value and not isinstance(value["model"], str):
        raise RejectedFile(f"sidecar {path.name}: model must be a string", code="sidecar_invalid")
    return value


def find_sidecar(image: Path) -> Path | None:
    for candidate in sidecar_candidates(image):
        if candidate.is_file() and not candidate.is_symlink():
            return candidate
    return None


def quarantine(config: Config, path: Path, reason: str, code: str) -> Path:
    """Move ``path`` into ``<data-dir>/quarantine/`` with ``<name>.reason`` beside it; return the new path.

    Raises DiskFull (and leaves ``path`` where it was) when the disk is full."""
    try:
        config.quarantine_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFull.writing("the quarantine", config.quarantine_dir) from None
        raise
    stamp = time.strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in path.name) or "unnamed"
    dest = config.quarantine_dir / f"{stamp}_{safe}"
    n = 1
    while dest.exists() or dest.with_name(dest.name + ".reason").exists():
        dest = config.quarantine_dir / f"{stamp}_{n}_{safe}"
        n += 1
    reason_file = dest.with_name(dest.name + ".reason")
    try:  # the reason first: a full disk leaves the file where it was, never a file without its reason
        reason_file.write_text(
            f"code: {code}\nfile: {log_name(path)}\nreason: {log_name(reason)}\n", encoding="utf-8"
        )
        _move(path, dest)
        tighten(dest)  # a moved file keeps the uploader's mode; quarantine is as private as the spool
    except OSError as exc:
        reason_file.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise DiskFull.writing("the quarantine", config.quarantine_dir) from None
        raise
    log.warning("quarantined %s: %s", log_name(path), log_name(reason))
    return dest


def quarantined(config: Config, limit: int = 200) -> tuple[list[dict[str, Any]], int]:
    """The newest ``limit`` quarantined files with their reasons (``name``, ``code``, ``file`` as dropped,
    ``reason``, ``sizeBytes``, ``quarantinedAt`` UTC), and how many there are in all."""
    try:
        reasons = sorted(config.quarantine_dir.glob("*.reason"), key=lambda p: p.name, reverse=True)
    except OSError:
        return [], 0
    entries = []
    for reason_file in reasons[:limit]:
        fields: dict[str, str] = {}
        try:
            text = reason_file.read_text(encoding="utf-8", errors="replace")
            mtime = reason_file.stat().st_mtime
        except OSError:  # removed by an operator meanwhile
            continue
        for line in text.splitlines():
            key, sep, value = line.partition(": ")
            if sep and key in ("code", "file", "reason"):
                fields[key] = value
        moved = reason_file.with_name(reason_file.name[: -len(".reason")])
        try:
            size = moved.lstat().st_size
        except OSError:
            size = None
        entries.append(
            {
                "name": moved.name,
                "code": fields.get("code", "unknown"),
                "file": fields.get("file", ""),
                "reason": fields.get("reason", text.strip()),
                "sizeBytes": size,
                "quarantinedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime)),
            }
        )
    return entries, len(reasons)


def _move(path: Path, dest: Path) -> None:
    try:
        os.replace(path, dest)
    except OSError as exc:
        if is_disk_full(exc):
            raise
        # Another filesystem: copy the bytes (a symlink is recreated, never followed), then unlink.
        try:
            if path.is_symlink():
                os.symlink(os.readlink(path), dest)
            else:
                dest.write_bytes(path.read_bytes())
        except OSError:
            dest.unlink(missing_ok=True)
            raise
        path.unlink()


def ingest_file(
    store: Store, config: Config, path: Path, inbox: Path, *, budget: DiskBudget | None = None
) -> IngestResult | None:
    """Ingest one inbox file (with its sidecar), then remove both from the inbox.

    Returns None when the file was quarantined or vanished; raises NotReady when it should be tried
    again later (an empty or incomplete image that was modified moments ago).
    """
    try:
        rel = path.relative_to(inbox)
    except ValueError:
        rel = Path(path.name)
    sidecar = find_sidecar(path)
    try:
        data, source = _read_inbox_file(path, inbox)
        if not data and _modified_moments_ago(path):
            raise NotReady(f"{path} is empty and was created moments ago")
        metadata = read_sidecar(sidecar) if sidecar else {}
        header = validate_bytes(data, config)
        if not header.complete:
            if _modified_moments_ago(path):
                raise NotReady(f"{path} is incomplete and was modified moments ago")
            raise RejectedFile(
                f"{header.media_type} file is truncated (no end-of-image marker); send the complete file again",
                code="truncated",
            )
        metadata = {**metadata, "sourcePath": rel.as_posix()}
        if "planogram" not in metadata and (planogram := planogram_for(config, rel)) is not None:
            metadata["planogram"] = planogram  # recorded with the observation: results stay reproducible
        model = model_for(config, rel, metadata)
        result = ingest_bytes(
            store,
            config,
            data,
            name=rel.as_posix(),
            metadata=metadata,
            model=model,
            source=source,
            budget=budget,
        )
    except RejectedFile as exc:
        if not path.is_symlink() and not os.path.lexists(path):
            return None
        try:
            quarantine(config, path, str(exc), exc.code)
            if sidecar is not None and sidecar.exists():
                quarantine(config, sidecar, f"sidecar of quarantined {path.name}: {exc}", exc.code)
        except DiskFull as full:
            return _disk_full(path, full, budget)
        return None
    except FileNotFoundError:
        return None
    except DiskFull as exc:
        return _disk_full(path, exc, budget)
    except DiskBudgetExceeded as exc:
        log.warning("%s stays in the inbox: %s", log_name(path), exc)
        raise NotReady(str(exc), retry_s=BUDGET_RETRY_S) from None
    for done in (path, sidecar):
        if done is not None:
            with contextlib.suppress(FileNotFoundError):
                done.unlink()
    return result


def _disk_full(path: Path, exc: DiskFull, budget: DiskBudget | None) -> None:
    """The file stays in the inbox; intake pauses until space returns (NotReady: tried again later)."""
    if budget is not None:
        budget.disk_full(str(exc).removeprefix("disk full while writing ").split(";")[0])
    log.warning("%s stays in the inbox: %s", log_name(path), exc)
    raise NotReady(str(exc), retry_s=DISK_FULL_RETRY_S)


def _modified_moments_ago(path: Path) -> bool:
    """A writer may still be filling this file (a folder scan can see it between creation and write)."""
    return time.time() - path.stat().st_mtime < INCOMPLETE_GRACE_S


def _read_inbox_file(path: Path, inbox: Path) -> tuple[bytes, SourceFile | None]:
    """Bytes of a regular file inside the inbox (and where they came from, for linking into the
    spool); symlinks out of the inbox and unreadable files refused."""
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.is_relative_to(Path(os.path.realpath(inbox))):
            raise RejectedFile(
                f"symlink points outside the inbox (to {target}); copy the file in instead",
                code="symlink_outside",
            )
    if not path.is_file():
        raise RejectedFile("not a regular file", code="not_a_file")
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read()
        source = None if path.is_symlink() else SourceFile(path, st.st_ino, st.st_size, st.st_mtime_ns)
        return data, source
    except PermissionError:
        raise RejectedFile(
            "permission denied reading the file; make it readable by the edgecv user", code="unreadable"
        ) from None


def recover_spool(
    store: Store, config: Config, *, budget: DiskBudget | None = None, requeue_jobless: bool = False
) -> int:
    """Start-up check (the agent holds the data-dir lock): every spooled image has an observation.

    After a power loss the last committed transactions of the WAL can be lost while the spool file and
    the inbox unlink survived; such an orphan is ingested again (default model, its sidecar metadata
    is gone) so that it still ends in a job. Leftover temporary files are removed. Returns how many
    orphans were recovered. With ``requeue_jobless`` (after a damaged job log was rebuilt) observations
    that lost every job get one for the default model again.
    """
    if requeue_jobless:
        for observation in store.observations_without_jobs():
            job, created = store.create_job(observation.id, config.default_model)
            if created:
                log.warning("%s lost its job with the damaged job log; queued %s", observation.id, job.id)
    spool = config.spool_dir
    if not spool.is_dir():
        return 0
    known = store.observation_hashes()
    recovered = 0
    for path in sorted(spool.glob("*/*")):
        if path.name.startswith("."):
            path.unlink(missing_ok=True)  # an interrupted spool write
            continue
        if path.stem in known:
            continue
        try:
            ingest_bytes(
                store,
                config,
                path.read_bytes(),
                name=f"recovered/{path.name}",
                metadata={"recoveredFromSpool": True},
                model=config.default_model,
                budget=budget,
            )
            recovered += 1
        except EdgecvError as exc:
            log.warning("spooled %s could not be recovered: %s", log_name(path), exc)
    if recovered:
        log.warning("recovered %d spooled image(s) whose observation was lost (power loss?)", recovered)
    return recovered
