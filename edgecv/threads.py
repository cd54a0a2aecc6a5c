"""Threads that show their names to the OS (``top -H``, ``ps -L``, ``/proc/PID/task/*/comm``), how many
cores and backlog lanes there are (``usable_cores``, ``lane_slots``), and numpy's BLAS kept to the calling
thread (``limit_blas_threads``), and glibc's malloc arenas capped (``limit_malloc_arenas``).

Python names its threads for itself only; an operator looking at a busy edge box sees a dozen
``python`` threads. ``start_thread`` and ``name_os_thread`` copy the Python name to the kernel's
(Linux ``prctl(PR_SET_NAME)``, 15 characters); elsewhere they are no-ops. Threads a library starts
(OpenVINO's inference threads) inherit the name of the thread that started them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

_PR_SET_NAME = 15
_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        _libc = None


def name_os_thread(name: str | None = None) -> None:
    """Give the calling thread ``name`` (default: its Python name) at the OS level."""
    if _libc is None:
        return
    raw = (name or threading.current_thread().name).encode("ascii", "replace")[:15]
    _libc.prctl(_PR_SET_NAME, ctypes.c_char_p(raw), 0, 0, 0)


def start_thread(name: str, target: Callable, *args, daemon: bool = True) -> threading.Thread:
    """Start a daemon thread named ``name`` for Python and for the OS."""

    def run() -> None:
        name_os_thread(name)
        target(*args)

    thread = threading.Thread(target=run, name=name, daemon=daemon)
    thread.start()
    return thread


MAX_LANES = 4  # backlog lanes (or decode threads) per process, and the price reader's lane streams


def usable_cores() -> int:
    """CPU cores this process may use (respects taskset/cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def lane_slots() -> int:
    """Backlog lanes (or decode threads) this process runs at most: one per core, at most ``MAX_LANES``."""
    return min(MAX_LANES, usable_cores())


_blas_limited = False


def limit_blas_threads() -> None:
    """Run numpy's BLAS (OpenBLAS) on the calling thread only, for the rest of the process.

    The agent's matrix products are small (the tag box refiner's, row geometry), and OpenVINO owns the
    cores for inference. OpenBLAS would split the tag box refiner's 20 × 512 × 64 product over its own
    threads, which then spin-wait for the next call on the cores the detector's threads need and slow it
    down (figures: docs/performance.md, "Figures behind the code").
    Called when detectors are opened (``DetectorPool``); once per process.
    """
    global _blas_limited
    if _blas_limited:
        return
    _blas_limited = True
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
    except Exception as exc:  # a BLAS threadpoolctl does not know: slower, not wrong
        log.debug("BLAS threads not limited: %s", exc)


_M_ARENA_MAX = -8  # glibc mallopt parameter
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas for the rest of the process (``mallopt(M_ARENA_MAX)``), unless the
    operator chose a value with ``MALLOC_ARENA_MAX``. True when the cap was set.

    glibc gives each new thread that meets a busy arena an arena of its own (up to 8 per core), and memory
    freed into one arena is not reused by the others. In two agents run side by side on one machine
    (scripts/long_run.py, 4,000 images in 6 minutes) two arenas ended at 226.5 MiB (+2.5 % after warm-up)
    against 238.5 MiB (+3.3 %) with glibc's default (docs/operations.md). Called first thing by the CLI,
    before any thread starts."""
    if _libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        return bool(_libc.mallopt(_M_ARENA_MAX, int(arenas)))
    except (AttributeError, OSError) as exc:  # not glibc (musl has no mallopt)
        log.debug("malloc arenas not capped: %s", exc)
        return False


VECTOR_EXTENSIONS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8")


def cpu_flags() -> list[str]:
    """The CPU's vector extensions that decide inference speed here (AVX2, AVX-512, VNNI, AMX), sorted; every
    speed figure is printed with them, since CPUs differ up to 6x. Empty where /proc/cpuinfo is absent."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            words = set(fh.read().split())
    except OSError:
        return []
    return sorted(words & set(VECTOR_EXTENSIONS))


def cpu_flags_text() -> str:
    """``cpu_flags()`` as one line for a benchmark's header."""
    return " ".join(cpu_flags()) or "none of " + "/".join(VECTOR_EXTENSIONS)
