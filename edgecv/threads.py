"""Threads that show their names to the OS (``top -H``, ``ps -L``, ``/proc/PID/task/*/comm``).

Python names its threads for itself only; an operator looking at a busy edge box sees a dozen
``python`` threads. ``start_thread`` and ``name_os_thread`` copy the Python name to the kernel's
(Linux ``prctl(PR_SET_NAME)``, 15 characters); elsewhere they are no-ops. Threads a library starts
(OpenVINO's inference threads) inherit the name of the thread that started them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from collections.abc import Callable

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
