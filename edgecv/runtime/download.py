"""Downloading a model bundle over http(s) with resume: ``edgecv models install URL`` and the model pull.

The bytes go into ``<data dir>/downloads/<key>.partial`` (``key``: the first 16 hex digits of the sha256
of the URL), beside ``<key>.json`` (the URL, the server's ETag and the total size it stated). A download
that stops early (connection closed, server gone, timeout) keeps the partial file; the next attempt asks
for the rest with ``Range: bytes=N-`` and ``If-Range: <ETag>``, so a file that changed on the server starts
over instead of being spliced. ``<key>.lock`` (``flock``) is held for the whole download and install, so a
second install of the same URL is refused at once.

What the server says is checked, never trusted: a ``206`` must start where we asked and state the same
total as before; the total must equal the catalogue's size when one is known, and no more bytes than the
total are written. Whatever passes still has to pass the bundle's signature and every member's sha256
(:mod:`edgecv.runtime.bundle`), and the catalogue's sha256 of the whole file when given.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edgecv.errors import InstallInProgress, ModelBundleError, UpstreamUnreachable

log = logging.getLogger(__name__)

CHUNK = 1 << 20
ROUNDS = 3  # requests per call: a connection that ends early is resumed at once this many times
CONTENT_RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


@dataclass
class Downloaded:
    path: Path
    size: int
    sha256: str
    resumed_from: int  # bytes that were already on disk from an earlier attempt (0: a fresh download)
    requests: int


def download_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelBundleError(f"{url!r} is not an http(s) URL of a bundle")


@contextmanager
def download_lock(folder: Path, url: str):
    """Hold the URL's download lock, or raise InstallInProgress at once."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{download_key(url)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InstallInProgress(
                f"another install of {url} is running; wait for it to finish and try again"
            ) from None
        yield
    finally:
        os.close(fd)


def discard(folder: Path, url: str) -> None:
    """Forget a download (its partial file and what the server said); call under the lock."""
    key = download_key(url)
    for name in (f"{key}.partial", f"{key}.json"):
        (folder / name).unlink(missing_ok=True)


def download(
    url: str,
    folder: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
    min_free_bytes: int = 0,
) -> Downloaded:
    """Fetch ``url`` into ``folder`` (resuming an earlier partial file); call under :func:`download_lock`.

    ``size`` / ``sha256``: what the catalogue says the file is (checked when given). Raises
    UpstreamUnreachable when the server cannot be reached or stops answering (the partial file is kept
    for the next attempt) and ModelBundleError when the server's answers are inconsistent or the bytes
    are not the catalogue's (the partial file is deleted)."""
    check_url(url)
    key = download_key(url)
    partial, meta_path = folder / f"{key}.partial", folder / f"{key}.json"
    meta = _read_meta(meta_path, url)
    if not partial.exists() or (size is not None and meta.get("total") not in (None, size)):
        discard(folder, url)
        meta = {"url": url}
    resumed_from = partial.stat().st_size if partial.exists() else 0
    requests = 0
    last_error = None
    while True:
        have = partial.stat().st_size if partial.exists() else 0
        total = meta.get("total")
        if total is not None and have == total:
            break
        if total is not None and have > total:
            discard(folder, url)
            raise ModelBundleError(
                f"{url}: more bytes on disk than the server said the bundle has; try again"
            )
        if requests >= ROUNDS:
            raise UpstreamUnreachable(
                f"{url}: the download stopped at {have} of {total} bytes ({last_error}); the partial file "
                "is kept and the next attempt resumes it"
            )
        requests += 1
        try:
            done = _fetch(url, partial, meta, meta_path, have, size, headers or {}, timeout_s, min_free_bytes)
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.errno is not None and _local_write_error(exc):
                raise ModelBundleError(
                    f"cannot write the download into {folder}: {exc.strerror}; free space, then try again"
                ) from None
            last_error = f"{type(exc).__name__}: {exc or 'timed out'}"
            if not partial.exists() or partial.stat().st_size == have:  # no progress: the server is gone
                raise UpstreamUnreachable(
                    f"{url}: {last_error}"
                    + (f"; {have} bytes are kept and the next attempt resumes them" if have else "")
                ) from None
            continue
        if done:
            break
    digest = _sha256(partial)
    if sha256 is not None and digest != sha256:
        discard(folder, url)
        raise ModelBundleError(
            f"{url}: the downloaded file's sha256 is {digest}, the catalogue says {sha256}; the bytes were "
            "changed on the way: not installed"
        )
    return Downloaded(partial, partial.stat().st_size, digest, resumed_from, requests)


def _local_write_error(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG)


def _read_meta(path: Path, url: str) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"url": url}
    return meta if isinstance(meta, dict) and meta.get("url") == url else {"url": url}


def _write_meta(path: Path, meta: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _connection(url: str, timeout_s: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return cls(parts.hostname, parts.port, timeout=timeout_s), target


def _fetch(
    url: str,
    partial: Path,
    meta: dict,
    meta_path: Path,
    have: int,
    size: int | None,
    headers: dict[str, str],
    timeout_s: float,
    min_free_bytes: int,
) -> bool:
    """One request. True when the file is complete; False when the body ended early (resume)."""
    conn, target = _connection(url, timeout_s)
    request_headers = dict(headers)
    if have:
        request_headers["Range"] = f"bytes={have}-"
        if meta.get("etag"):
            request_headers["If-Range"] = meta["etag"]
    try:
        conn.request("GET", target, headers=request_headers)
        resp = conn.getresponse()
        if resp.status == 416 and have:  # the file changed under us, or we hold all of it already
            resp.read()
            if meta.get("total") == have:
                return True
            raise _start_over(partial, meta_path, url, "the server refused the range of the partial file")
        if resp.status not in (200, 206):
            body = resp.read(2000)
            if resp.status in (408, 425, 429) or resp.status >= 500:
                raise http.client.HTTPException(f"HTTP {resp.status} from {urlsplit(url).hostname}")
            hint = (
                "; check sync.api_key (sent to the sync server's host only)"
                if resp.status in (401, 403)
                else ""
            )
            raise ModelBundleError(f"{url}: HTTP {resp.status}: {_error_text(body)}{hint}")
        start, total = _response_range(url, resp, have, partial, meta_path)
        if size is not None and total != size:
            discard(partial.parent, url)
            raise ModelBundleError(
                f"{url}: the server says the bundle has {total} bytes, the model catalogue says {size}; "
                "refused (the server's answers do not agree)"
            )
        if meta.get("total") not in (None, total) and start:
            raise _start_over(
                partial, meta_path, url, f"the stated size changed ({meta['total']} -> {total})"
            )
        _check_room(partial.parent, total - start, min_free_bytes)
        meta.update(total=total, etag=resp.getheader("ETag"))
        _write_meta(meta_path, meta)
        with open(partial, "r+b" if start else "wb") as out:
            out.seek(start)
            out.truncate()
            written = start
            while chunk := resp.read(min(CHUNK, total - written) or 1):
                if written + len(chunk) > total:
                    raise _start_over(partial, meta_path, url, "the server sent more bytes than it said")
                out.write(chunk)
                written += len(chunk)
                if written == total:
                    break
            out.flush()
            os.fsync(out.fileno())
        return written == total
    finally:
        conn.close()


def _response_range(url: str, resp, have: int, partial: Path, meta_path: Path) -> tuple[int, int]:
    """``(first byte, total size)`` of a 200 or 206 answer, checked against what was asked."""
    if resp.status == 200:
        length = resp.getheader("Content-Length")
        if length is None or not length.isdigit():
            raise ModelBundleError(f"{url}: the server states no Content-Length; cannot check the download")
        return 0, int(length)
    match = CONTENT_RANGE_RE.match(resp.getheader("Content-Range") or "")
    if not match:
        raise _start_over(partial, meta_path, url, "a 206 answer without a usable Content-Range")
    first, last, total = (int(g) for g in match.groups())
    length = resp.getheader("Content-Length")
    if first != have or last != total - 1 or (length is not None and int(length) != last - first + 1):
        raise _start_over(
            partial,
            meta_path,
            url,
            f"asked for bytes {have}-, the server answered {first}-{last}/{total} (Content-Length {length})",
        )
    return first, total


def _start_over(partial: Path, meta_path: Path, url: str, why: str) -> ModelBundleError:
    partial.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    return ModelBundleError(f"{url}: {why}; the partial download was deleted (the next attempt starts over)")


def _check_room(folder: Path, need: int, min_free_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if free - need < min_free_bytes:
        raise ModelBundleError(
            f"no room for the download in {folder}: it needs {need} bytes, {free} are free and "
            f"{min_free_bytes} must stay free (min_free_mb); free space, then try again"
        )


def _error_text(body: bytes) -> str:
    try:
        err = json.loads(body).get("error") or {}
        return f"{err.get('code', 'error')}: {err.get('message', '')}"
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
