"""Process-wide logging: human-readable lines by default, JSON lines with ``--log-format json``.

Every record passes :class:`SecretFilter` before it is formatted, so a secret never reaches a log line,
whichever module logged it and however (message, arguments, exception text). Secrets are redacted two
ways: the exact values from the config (``sync.api_key``, ``api.token``, ``webhooks.secret``, registered
with :func:`register_secrets` once the config is loaded) and patterns that look like credentials
(``Authorization: Bearer …``, ``whsec_…``, ``api_key=…``), which cover values edgecv never saw in config.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from edgecv.config import Config

REDACTED = "[REDACTED]"
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{4,}"),
    re.compile(r"whsec_[A-Za-z0-9+/=]{4,}"),
    re.compile(r"(?i)((?:api[_-]?key|token|secret|password)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}&]{4,}"),
)
_MIN_SECRET_LEN = 4  # shorter values would redact ordinary words


class _Secrets:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            self._values.update(v for v in values if v and len(v) >= _MIN_SECRET_LEN)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def redact(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
        return text


SECRETS = _Secrets()


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def log_name(value: object) -> str:
    """A path or file name as it goes into a log line or a ``.reason`` file: control and other
    non-printable characters (newline, escape, Unicode line separators, undecodable bytes) written as
    ``\\n``/``\\xNN``/``\\uNNNN`` like ``repr`` does, so a name cannot split or forge a line."""
    text = str(value)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape_char(c) for c in text)


def _escape_char(c: str) -> str:
    if c in _ESCAPES:
        return _ESCAPES[c]
    if c.isprintable():
        return c
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def register_secrets(config: Config) -> None:
    """Remember the config's secret values so they are redacted from every later log line."""
    SECRETS.add(config.sync.api_key, config.api.token, config.webhooks.secret, config.mqtt.password)


def redact(text: str) -> str:
    """``text`` with every known secret and credential-looking value replaced by ``[REDACTED]``."""
    return SECRETS.redact(text)


class SecretFilter(logging.Filter):
    """Renders the message (and exception text) once, redacted, so formatters only see clean text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format must not hide the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, ``thread`` (+ ``exc``)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            doc["exc"] = record.exc_text
        return json.dumps(doc, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(
    level: str = "INFO", log_format: str = "text", *, force: bool = False
) -> logging.Handler | None:
    """Install edgecv's root handler (replacing an earlier one of ours) and return it.

    Like ``logging.basicConfig``, a root logger that already has someone else's handlers (an embedding
    application, a test runner) is left as it is unless ``force``; its handlers only get the
    :class:`SecretFilter`, so secrets stay out of their output too. Returns None in that case.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format: expected one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "_edgecv", False)]
    foreign = [h for h in root.handlers if h not in ours]
    if foreign and not force:
        for handler in foreign:
            if not any(isinstance(f, SecretFilter) for f in handler.filters):
                handler.addFilter(SecretFilter())
        return None
    for old in ours:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler._edgecv = True  # type: ignore[attr-defined]
    handler.addFilter(SecretFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


@contextlib.contextmanager
def quiet(level: int = logging.WARNING) -> Iterator[None]:
    """Leave edgecv's log lines below ``level`` out for the block: a command that prints its own report
    (``edgecv doctor``) is not interleaved with the model loaders' INFO lines on stderr."""
    logger = logging.getLogger("edgecv")
    before = logger.level
    logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        logger.setLevel(before)
