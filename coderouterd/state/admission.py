"""Which records the writer's queue takes, and in what order they leave it.

One FIFO for every record keeps their relative order (an exclusion and its
audit event land in the order they happened), while two caps are enforced
by counting: request records are dropped past `max_queue` (a slow disk may
slow the log, never the requests), audit events and exclusion changes
(`KEPT`) only past their own, far larger `max_audit_queue`. Each drop is
counted and reported (drops.py). Each entry carries its arrival time, which
the writer's commit window is measured from.
"""

from __future__ import annotations

from collections import deque

from coderouterd.state.drops import DropReporter, OnDrop
from coderouterd.state.records import KEPT, Record


class Admission:
    def __init__(self, *, max_queue: int, max_audit_queue: int, on_drop: OnDrop) -> None:
        self._max_queue = max_queue
        self._max_audit_queue = max_audit_queue
        self._entries: deque[tuple[Record, float]] = deque()
        self.drops = DropReporter(on_drop)
        # Queued now, and dropped so far, of each kind.
        self.depth = 0
        self.audit_depth = 0
        self.dropped = 0
        self.audit_dropped = 0
        # Once closed, every record is dropped.
        self.closed = False

    def __len__(self) -> int:
        return len(self._entries)

    def first_at(self) -> float:
        """When the oldest queued record arrived."""
        return self._entries[0][1]

    def offer(self, record: Record, now: float) -> bool:
        """Queue `record`; False (and counted) if it was dropped."""
        audit = isinstance(record, KEPT)
        if audit:
            admitted = not self.closed and self.audit_depth < self._max_audit_queue
        else:
            admitted = not self.closed and self.depth < self._max_queue
        if not admitted:
            if audit:
                self.audit_dropped += 1
            else:
                self.dropped += 1
            self.drops.dropped()
            return False
        if audit:
            self.audit_depth += 1
        else:
            self.depth += 1
        self._entries.append((record, now))
        return True

    def take(self, most: int) -> list[Record]:
        """Up to `most` records, oldest first."""
        batch: list[Record] = []
        while self._entries and len(batch) < most:
            record, _ = self._entries.popleft()
            if isinstance(record, KEPT):
                self.audit_depth -= 1
            else:
                self.depth -= 1
            batch.append(record)
        return batch
