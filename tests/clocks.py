"""Clocks a test can move: the daemon reads its time from one (coderouterd.clock)."""

from __future__ import annotations

import time


class ShiftedClock:
    """Real monotonic time; wall time that runs on from one the test chooses,
    and that it can move to another month."""

    def __init__(self, wall: float) -> None:
        self._offset = wall - time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time() + self._offset

    def move_to(self, wall: float) -> None:
        self._offset = wall - time.time()
