"""Reporting records dropped on a full queue: at once, then once per batch."""

from __future__ import annotations

from collections.abc import Callable

OnDrop = Callable[[int], None]


class DropReporter:
    """Calls `report(n)` at the first drop of a spell, then at each `flush()`
    with the drops since, so an overflow is heard at once yet never once per
    record. A flush with nothing new ends the spell."""

    __slots__ = ("_report", "_reported", "_unreported")

    def __init__(self, report: OnDrop) -> None:
        self._report = report
        self._unreported = 0
        self._reported = False

    def dropped(self, n: int = 1) -> None:
        first = self._unreported == 0 and not self._reported
        self._unreported += n
        if first:
            self.flush()

    def flush(self) -> None:
        n, self._unreported = self._unreported, 0
        self._reported = n > 0
        if n:
            self._report(n)
