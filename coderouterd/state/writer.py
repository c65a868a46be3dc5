"""The one writer: a queue drained in batched transactions by a single task.

The request path calls `submit()`, which never awaits: the record goes on a
queue (admission.py says which records it takes) and `run()` writes it
later, together with whatever else arrived in the same window, in ONE
transaction. Readers use their own connections.

Durability, as a promise:

* A clean shutdown (`close()`) loses nothing that was submitted before it.
* A crash of the process (SIGKILL, OOM kill) loses at most what was queued in
  the last `window_s` seconds (0.05 s by default) plus the batch being
  committed at that moment (at most `max_batch` records). Once COMMIT
  returns, a record survives a process crash (WAL, see db.py).
* Under overload the queue is capped at `max_queue` records: a record
  arriving at a full queue is dropped and counted (`stats().dropped`), so a
  slow disk can slow the log but never the requests.
* A crash while the writer is behind (a slow disk, a burst) loses what is
  queued, however long it has waited: at most `max_queue` records, plus the
  audit events and exclusion changes queued beside them.
* Audit events and exclusion changes are never dropped for overload: they
  count against their own cap (`max_audit_queue`, 100 000 by default, far
  beyond anything but a stuck disk), and only past that cap are they
  dropped and counted (`stats().audit_dropped`) rather than growing memory
  without bound.
* A batch that fails (disk full, a constraint) is rolled back as a whole,
  reported to `on_error`, counted (`stats().failed_rows`), and the loop goes
  on with the next batch.
* A replay record whose request row, or the earlier record its body
  continues, is not in the database when its batch is written is not
  inserted (it could never be read back whole) and is counted
  (`stats().replays_orphaned`); it is no error, and costs no other record.
  Nor is one naming a piece that a failed batch carried and no batch has
  written since (lost.py), or that retention deleted (doubt_named_pieces).
* A request whose id is already stored (a client reusing an x-request-id
  long after its first use) is stored under that id with a suffix, its
  replay record with it; `on_rename` hears of it (`stats().renamed`).

Counts are of records: a request with its attempts and its spend counts as
one, and so does an exclusion change with its audit event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite
import msgspec

from coderouterd.clock import Clock
from coderouterd.state.admission import Admission
from coderouterd.state.chain import GENESIS
from coderouterd.state.db import StateError, immediate
from coderouterd.state.drops import OnDrop
from coderouterd.state.inserts import Renames, insert, insert_each
from coderouterd.state.lost import LostPieces
from coderouterd.state.records import AuditEvent, Record, ReplayRow, Writable

T = TypeVar("T")

OnError = Callable[[Exception, int], None]
OnRename = Callable[[str, str], None]
Job = Callable[[aiosqlite.Connection], Awaitable[Any]]

_log = logging.getLogger(__name__)


def _log_error(exc: Exception, lost: int) -> None:
    _log.error("state write failed, %d records lost: %r", lost, exc)


def _log_drop(dropped: int) -> None:
    _log.warning("state queue full, %d records dropped", dropped)


def _log_rename(client_id: str, stored_id: str) -> None:
    _log.warning("request id %s already stored; this request stored as %s", client_id, stored_id)


class WriterStats(msgspec.Struct, frozen=True, kw_only=True):
    queue_depth: int
    dropped: int
    committed_rows: int
    batches: int
    last_commit_wall: float | None
    audit_queue_depth: int
    audit_dropped: int
    # Records lost because their batch failed to commit.
    failed_rows: int
    # Replay records not inserted: their request row, base record or a piece was missing.
    replays_orphaned: int
    # Requests stored under a new id: theirs was already taken.
    renamed: int = 0


class Writer:
    def __init__(
        self,
        conn: aiosqlite.Connection,
        *,
        clock: Clock,
        window_s: float = 0.05,
        max_batch: int = 256,
        max_queue: int = 10_000,
        max_audit_queue: int = 100_000,
        on_error: OnError = _log_error,
        on_drop: OnDrop = _log_drop,
        on_rename: OnRename = _log_rename,
    ) -> None:
        if window_s < 0 or max_batch < 1 or max_queue < 0 or max_audit_queue < 0:
            raise ValueError("window_s, max_queue, max_audit_queue >= 0 and max_batch >= 1")
        self._conn = conn
        self._clock = clock
        self._window_s = window_s
        self._max_batch = max_batch
        self._on_error = on_error
        self._on_rename = on_rename
        self._renames = Renames()
        self._lost = LostPieces()
        # Records made until this wall time may name pieces retention deleted.
        self._doubt_until: float | None = None
        self._queue = Admission(
            max_queue=max_queue, max_audit_queue=max_audit_queue, on_drop=on_drop
        )
        self._enqueued = 0
        self._processed = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._jobs: deque[tuple[Job, asyncio.Future[Any]]] = deque()
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False
        # True while run(), an inline drain or an inline job owns the connection.
        self._active = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False
        # (seq, hash) of the last committed audit row; loaded before the first write.
        self._chain: tuple[int, str] | None = None
        self._failed = 0
        self._orphaned = 0
        self._committed = 0
        self._batches = 0
        self._last_commit_wall: float | None = None

    def submit(self, record: Record) -> bool:
        """Queue a record for the next batch; False if it was dropped. Never blocks."""
        was_empty = not self._queue
        if not self._queue.offer(record, self._clock.monotonic()):
            return False
        self._enqueued += 1
        # Wake the loop only when it has something new to decide; waking it for
        # every record would cost a loop iteration per request.
        if was_empty or len(self._queue) >= self._max_batch:
            self._wake.set()
        return True

    def stats(self) -> WriterStats:
        return WriterStats(
            queue_depth=self._queue.depth,
            dropped=self._queue.dropped,
            committed_rows=self._committed,
            batches=self._batches,
            last_commit_wall=self._last_commit_wall,
            audit_queue_depth=self._queue.audit_depth,
            audit_dropped=self._queue.audit_dropped,
            failed_rows=self._failed,
            replays_orphaned=self._orphaned,
            renamed=self._renames.count,
        )

    def doubt_named_pieces(self) -> None:
        """Retention deleted pieces that records made until now may name (the
        recorder has forgotten them since): each such replay row checks in its
        INSERT that what it names is stored, and is left out if not."""
        now = self._clock.wall()
        self._doubt_until = max(now, self._doubt_until or now)

    async def run(self) -> None:
        """The writer loop; returns after close(). Errors are reported, never raised."""
        if self._running:
            raise RuntimeError("the state writer is already running")
        # A flush() or maintain() that got here first (the task was spawned but
        # had not started yet) finishes its own writes before the loop takes over.
        while self._active:
            await self._idle.wait()
        self._active = self._running = True
        self._idle.clear()
        self._stopped.clear()
        try:
            while True:
                while not self._queue and not self._jobs and not self._closing:
                    self._wake.clear()
                    await self._wake.wait()
                if self._jobs:
                    await self._run_jobs()
                if self._queue:
                    await self._collect_window()
                    await self._write_batch(self._take_batch())
                elif self._closing and not self._jobs:
                    return
        finally:
            self._active = self._running = False
            self._idle.set()
            self._stopped.set()
            self._release_waiters(everyone=True)
            self._fail_jobs()

    async def flush(self) -> None:
        """Write everything submitted so far; return once it is committed (or lost)."""
        target = self._enqueued
        while self._processed < target:
            if self._active:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append((target, waiter))
                self._wake.set()
                await waiter
            else:
                await self._drain_inline()

    async def close(self) -> None:
        """Write everything still queued, then stop run(); later submits are dropped."""
        await self.flush()
        self._closing = True
        self._wake.set()
        if self._running:
            await self._stopped.wait()
        # Records submitted while run() was winding down.
        await self.flush()
        self._queue.closed = True

    async def maintain(self, job: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run `job` on the writer's connection between two batches (e.g. retention).

        Sharing the loop keeps the connection's transactions from interleaving
        with a batch's.
        """
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.append((job, done))
        self._wake.set()
        if not self._active:
            await self._drain_inline()
        return await done

    async def _drain_inline(self) -> None:
        # Without a running loop (not started yet, or cancelled), the caller writes.
        self._active = True
        self._idle.clear()
        try:
            while self._queue or self._jobs:
                await self._run_jobs()
                if self._queue:
                    await self._write_batch(self._take_batch())
        finally:
            self._active = False
            self._idle.set()
            self._release_waiters(everyone=True)
            self._fail_jobs()

    async def _collect_window(self) -> None:
        # Measured from the oldest record's arrival, so a record never waits
        # more than window_s for its batch to start, even after a slow commit.
        first_at = self._queue.first_at()
        while len(self._queue) < self._max_batch and not self._waiters and not self._closing:
            remaining = self._window_s - (self._clock.monotonic() - first_at)
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return

    def _take_batch(self) -> list[Record]:
        return self._queue.take(self._max_batch)

    async def _write_batch(self, batch: list[Record]) -> None:
        unwritten = len(batch)
        # Whether every piece the batch carried is now stored.
        stored = False
        try:
            seq, prev_hash = await self._chain_head()
            # Until this batch commits the database is the truth: after any
            # failure, even a cancelled COMMIT that went through, reload it.
            self._chain = None
            writable: list[Writable] = []
            for record in batch:
                if not isinstance(record, AuditEvent):
                    writable.append(record)
                    continue
                try:
                    row = record.chained(seq=seq + 1, prev_hash=prev_hash)
                except (msgspec.EncodeError, TypeError, ValueError) as e:
                    # Fields that do not encode lose only their own event.
                    self._lose(e, 1)
                    unwritten -= 1
                    continue
                seq, prev_hash = row.seq, row.hash
                writable.append(row)
            writable = self._renames.apply(writable)
            try:
                async with immediate(self._conn):
                    orphaned = await insert(self._conn, self._guard(writable))
                stored = True
            except sqlite3.IntegrityError:
                # One record breaks a constraint (a request id stored before,
                # reused by its client): the others go in whatever becomes of it.
                # A replay row refused takes the pieces it carried with it, so
                # every row naming one checks them.
                renames = dict(self._renames.by_id)
                checked = self._lost.guard(writable, every=True)
                async with immediate(self._conn):
                    orphaned, refused = await insert_each(self._conn, checked, renames)
                stored = not refused
                for why in refused:
                    self._lose(why, 1)
                unwritten -= len(refused)
                for client_id, stored_id in self._renames.keep(renames):
                    with contextlib.suppress(Exception):
                        self._on_rename(client_id, stored_id)
        except Exception as e:
            # Broad on purpose: any failure costs this batch, never the loop.
            self._lose(e, unwritten)
        else:
            self._chain = (seq, prev_hash)
            self._committed += unwritten - orphaned
            self._orphaned += orphaned
            self._batches += 1
            self._last_commit_wall = self._clock.wall()
        finally:
            # Rolled back, cancelled or with a record refused: the records
            # still to come that name its pieces must check them.
            self._lost.settled(batch, stored=stored)
            self._processed += len(batch)
            self._release_waiters()
            self._queue.drops.flush()

    async def _chain_head(self) -> tuple[int, str]:
        if self._chain is None:
            async with self._conn.execute(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
            ) as cur:
                row = await cur.fetchone()
            self._chain = (int(row[0]), str(row[1])) if row else (0, GENESIS)
        return self._chain

    def _guard(self, writable: list[Writable]) -> list[Writable]:
        """The records, those that may name a piece that is gone set to check theirs."""
        checked = self._lost.guard(writable)
        until = self._doubt_until
        if until is None:
            return checked
        return [
            msgspec.structs.replace(r, check_pieces=True)
            if isinstance(r, ReplayRow) and r.named_pieces and r.ts <= until
            else r
            for r in checked
        ]

    def _lose(self, exc: Exception, count: int) -> None:
        self._failed += count
        # A broken error reporter must not stop the writer either.
        with contextlib.suppress(Exception):
            self._on_error(exc, count)

    async def _run_jobs(self) -> None:
        while self._jobs:
            job, done = self._jobs.popleft()
            try:
                result = await job(self._conn)
            except Exception as e:
                if not done.done():
                    done.set_exception(e)
            else:
                if not done.done():
                    done.set_result(result)

    def _release_waiters(self, *, everyone: bool = False) -> None:
        # A released flush() re-checks its target, so releasing early is safe.
        keep: list[tuple[int, asyncio.Future[None]]] = []
        for target, waiter in self._waiters:
            if everyone or target <= self._processed:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                keep.append((target, waiter))
        self._waiters = keep

    def _fail_jobs(self) -> None:
        while self._jobs:
            _, done = self._jobs.popleft()
            if not done.done():
                done.set_exception(StateError("the state writer stopped before the job ran"))
