"""Noticing when the system clock is stepped (NTP after a long offline spell, a wrong RTC, an operator).

Wall-clock times are stored in the job log (lease expiries, webhook retry times) because other
processes read them; a step of the clock makes them wrong by the step. :class:`ClockWatch` compares the
wall clock with the monotonic clock (which never jumps) and reports by how much the wall clock moved
beyond the time that really passed, so the owner of the stored times can correct them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

STEP_TOLERANCE_S = 2.0  # slewing NTP and scheduling noise stay well under this


class ClockWatch:
    """``step()`` → seconds the wall clock jumped since the previous call (0.0 when it did not)."""

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        tolerance_s: float = STEP_TOLERANCE_S,
    ) -> None:
        self._wall, self._monotonic, self.tolerance_s = wall, monotonic, tolerance_s
        self._offset = self._wall() - self._monotonic()

    def step(self) -> float:
        offset = self._wall() - self._monotonic()
        jump = offset - self._offset
        self._offset = offset
        return jump if abs(jump) > self.tolerance_s else 0.0
