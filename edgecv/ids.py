"""Prefixed, time-sortable IDs unique across devices (ULID body: 48-bit ms time + 80 random bits).

Within one process IDs are strictly increasing (monotonic ULID): a second ID in the same millisecond
increments the random part, so ``ORDER BY id`` is creation order for everything one agent writes. A
clock stepped back keeps the last millisecond and counts on in the random part, so ids stay sorted and
unique; :func:`not_before` carries that across restarts (the job log seeds it with its newest id).
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def ulid() -> str:
    """A 26-character monotonic ULID."""
    global _last_ms, _last_rand
    with _lock:
        now = time.time_ns() // 1_000_000
        if now <= _last_ms:  # the same millisecond, or the clock was set back: count on
            now = _last_ms
            _last_rand += 1
            if _last_rand >> 80:  # the random part is used up: borrow the next millisecond
                now, _last_rand = now + 1, 0
        else:
            _last_rand = int.from_bytes(os.urandom(10), "big")
        _last_ms = now
        return _encode(now, 10) + _encode(_last_rand, 16)


def time_of(id_: str) -> int:
    """The millisecond timestamp inside a prefixed id (``job_01JD…``); -1 when it holds none."""
    body = id_.rpartition("_")[2][:10].upper()
    if len(body) != 10 or any(c not in _ALPHABET for c in body):
        return -1
    value = 0
    for c in body:
        value = value * 32 + _ALPHABET.index(c)
    return value


def not_before(id_: str) -> None:
    """Never issue an id that sorts before ``id_`` (the newest one in the job log): after a restart
    with the system clock set back, new ids continue from there instead of sorting before older ones."""
    global _last_ms, _last_rand
    ms = time_of(id_)
    with _lock:
        if ms > _last_ms:
            _last_ms = ms
            body = id_.rpartition("_")[2]
            _last_rand = 0
            for c in body[10:26].upper():
                _last_rand = _last_rand * 32 + (_ALPHABET.index(c) if c in _ALPHABET else 0)


def new_id(prefix: str) -> str:
    """``new_id("job")`` → ``"job_01JD…"``."""
    return f"{prefix}_{ulid()}"


def first_id_at(prefix: str, ms: int) -> str:
    """An id that sorts before every id made at or after unix millisecond ``ms`` and after every id made
    before it: a bound for time windows over ids (``first_id_at("job", t0) < job ids of [t0, …)``)."""
    return f"{prefix}_{_encode(max(0, ms), 10)}{'0' * 16}"
