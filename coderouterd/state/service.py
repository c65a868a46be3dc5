"""The daemon's state, opened and closed as one: database, writer, recorders, loops.

Opening migrates the database (refusing one newer than this code), reads
what the start needs (startup.py: this month's budget totals among them),
and starts the writer, the replay compressor and the retention loop as named
tasks. Closing stops the loops and flushes the writer, so a clean shutdown
loses nothing.

Self-healing records what it does through the methods of healing_audit.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import aiosqlite
import msgspec

from coderouterd.clock import Clock
from coderouterd.config.model import StateConfig
from coderouterd.routing.budget import BudgetBook
from coderouterd.routing.cost import month_of
from coderouterd.state import overflows, reads
from coderouterd.state.db import db_path, open_db
from coderouterd.state.healing_audit import HealingAudit
from coderouterd.state.migrate import discover, migrate
from coderouterd.state.recorder import ReplayRecorder
from coderouterd.state.records import AuditEvent, ExclusionSet
from coderouterd.state.retention import RetentionResult, retention_steps
from coderouterd.state.startup import read_startup
from coderouterd.state.writer import Writer
from coderouterd.tasks import cancel_and_wait, spawn
from coderouterd.telemetry import events

_T = TypeVar("_T")

RETENTION_INTERVAL_S = 3600.0
# Writer settings, bound when the database is opened; a reload reports them.
_OPEN_ONLY = ("synchronous", "commit_window_ms", "commit_batch", "queue_size")
# Retention's limits (replay for max_total_mb): a reload changing one runs a pass at once.
_LIMITS = ("retention_days", "retention_max_mb", "replay")


class StateStats(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    size_bytes: int
    queue_depth: int
    dropped: int
    failed_rows: int
    committed_rows: int
    last_commit_wall: float | None
    replays_dropped: int
    replays_too_large: int
    replays_orphaned: int
    requests_renamed: int = 0


class _Loops(NamedTuple):
    writer: asyncio.Task[None]
    replays: asyncio.Task[None]
    retention: asyncio.Task[None]


class StateService(HealingAudit):
    def __init__(
        self,
        path: Path,
        conn: aiosqlite.Connection,
        writer: Writer,
        replays: ReplayRecorder,
        budget: BudgetBook,
        *,
        config: StateConfig,
        clock: Clock,
        log: Any,
    ) -> None:
        self.path = path
        self.writer = writer
        self.replays = replays
        self.budget = budget
        self._conn = conn
        self._config = config
        # The writer's settings, fixed when the database was opened.
        self._opened = config
        self._clock = clock
        self._log = log
        self._loops: _Loops | None = None
        self._closed = False
        self._limits_changed = asyncio.Event()
        # One pass at a time, the loop's or a tick driven from outside (tests):
        # the replay cap's steps delete by a total another pass would make stale.
        self._one_pass = asyncio.Lock()
        # Request ids clients chose for the latest requests, oldest first.
        self.client_ids: tuple[str, ...] = ()
        # Providers excluded when the database was opened (self-healing loads them).
        self.exclusions: tuple[ExclusionSet, ...] = ()
        # The month whose spend, and whose thresholds audited, `budget` was loaded with.
        self.budget_month = ""

    @classmethod
    async def open(
        cls, state_dir: Path, config: StateConfig, *, clock: Clock, log: Any
    ) -> StateService:
        path = db_path(state_dir)
        conn = await open_db(path, synchronous=config.synchronous)
        now = clock.wall()
        # One clock reading: the month may turn between two, making last month's spend this one's.
        month = month_of(now)
        try:
            await migrate(conn, discover(), now=now)
            start = await read_startup(conn, path, month)
        except BaseException:
            await conn.close()
            raise

        def write_failed(exc: Exception, lost: int) -> None:
            log.error(events.STATE_WRITE_FAILED, error=repr(exc), lost=lost)
            # Pieces and records of the lost batch may be named by records still to come.
            replays.forget()

        writer = Writer(
            conn,
            clock=clock,
            window_s=config.commit_window_ms / 1000,
            max_batch=config.commit_batch,
            max_queue=config.queue_size,
            on_error=write_failed,
            on_drop=lambda dropped: log.warning(
                events.STATE_RECORDS_DROPPED, dropped=dropped, queue_size=config.queue_size
            ),
            on_rename=lambda client_id, stored_id: log.warning(
                events.STATE_REQUEST_ID_REUSED, client_id=client_id, stored_id=stored_id
            ),
        )
        replays = ReplayRecorder(
            writer,
            max_record_bytes=config.replay.max_record_kb * 1024,
            on_drop=lambda dropped: log.warning(events.STATE_REPLAYS_DROPPED, dropped=dropped),
        )
        service = cls(
            path, conn, writer, replays, start.budget, config=config, clock=clock, log=log
        )
        service.client_ids = start.client_ids
        service.exclusions = start.exclusions
        service.budget_month = start.month
        service._start()
        return service

    def _start(self) -> None:
        self._loops = _Loops(
            writer=spawn(self.writer.run(), name="state:writer"),
            replays=spawn(self.replays.run(), name="state:replays"),
            retention=spawn(self._retention_loop(), name="state:retention"),
        )

    def reconfigure(self, config: StateConfig) -> tuple[str, ...]:
        """Apply a reloaded `state` section: retention and replay caps at once;
        returns the writer settings that take effect only after a restart."""
        if any(getattr(config, k) != getattr(self._config, k) for k in _LIMITS):
            self._limits_changed.set()
        self._config = config
        self.replays.max_record_bytes = config.replay.max_record_kb * 1024
        return tuple(
            f"state.{k}" for k in _OPEN_ONLY if getattr(config, k) != getattr(self._opened, k)
        )

    def audit(self, event: str, **fields: Any) -> None:
        self.writer.submit(AuditEvent(ts=self._clock.wall(), event=event, fields=fields))

    async def per_provider(
        self, read: reads.ProviderRead[_T], providers: Iterable[str], limit: int
    ) -> dict[str, list[_T]]:
        """What `read` finds of each provider's last `limit` requests, oldest
        first (drift and pace at start-up: reads.recent_answers, recent_streams
        of each provider's model, reads.to_models)."""
        now = self._clock.wall()

        async def job(conn: aiosqlite.Connection) -> dict[str, list[_T]]:
            return {p: await read(conn, p, limit, now=now) for p in providers}

        return await self.writer.maintain(job)

    async def recent_overflows(
        self,
        within_s: float,
        *,
        held_within_s: float,
        cut_ratio: float,
        cut_min_tokens: int,
        image_tokens: int,
    ) -> overflows.Recent:
        """Each provider's latest refusal of a prompt as too long and latest
        cut of one in the last `within_s` seconds, its latest long hold, and
        when what was learned of it was last forgotten (learned windows at
        start-up)."""
        now = self._clock.wall()
        return await self.writer.maintain(
            lambda conn: overflows.recent(
                conn,
                now=now,
                within_s=within_s,
                held_within_s=held_within_s,
                ratio=cut_ratio,
                min_tokens=cut_min_tokens,
                image_tokens=image_tokens,
            )
        )

    async def _retention_pass(self, now: float) -> None:
        """One retention pass at `now`, with the limits of the config in force.

        Each step is a maintain job of its own: batches, and the reads at
        start-up, wait for one step at most, not for a whole backlog."""
        c = self._config
        steps = retention_steps(
            self._conn,
            now=now,
            max_age_days=c.retention_days,
            max_bytes=c.retention_max_mb * 1024 * 1024,
            max_replay_bytes=c.replay.max_total_mb * 1024 * 1024,
            forgotten=self._retention_deleted,
        )
        result = RetentionResult()
        while (step := await self.writer.maintain(lambda _: anext(steps, None))) is not None:
            result = step
        if any(msgspec.structs.astuple(result)):
            self._log.info(events.STATE_RETENTION, **msgspec.structs.asdict(result))

    def _retention_deleted(self) -> None:
        # A conversation's last record, or pieces the recorder believes
        # written, may be gone: the next records are stored in pieces written
        # again, and those made before check that what they name is stored.
        self.replays.forget()
        self.writer.doubt_named_pieces()

    async def retention_tick(self, now: float) -> float:
        """Run the retention pass due at `now`; return when the next one is due."""
        try:
            async with self._one_pass:
                await self._retention_pass(now)
        except Exception as exc:  # one failed pass must not end the loop
            self._log.error(events.STATE_RETENTION_FAILED, error=repr(exc))
        return now + RETENTION_INTERVAL_S

    async def _retention_loop(self) -> None:
        while True:
            # Before the pass reads the limits: a reload during it brings another.
            self._limits_changed.clear()
            due = await self.retention_tick(self._clock.wall())
            # Bounded: a wall clock set back must not postpone retention for long.
            wait = min(max(due - self._clock.wall(), 0.0), RETENTION_INTERVAL_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._limits_changed.wait(), wait)

    def stats(self) -> StateStats:
        w = self.writer.stats()
        return StateStats(
            path=str(self.path),
            size_bytes=sum(reads.file_sizes(self.path)),
            queue_depth=w.queue_depth + w.audit_queue_depth,
            dropped=w.dropped + w.audit_dropped,
            failed_rows=w.failed_rows,
            committed_rows=w.committed_rows,
            last_commit_wall=w.last_commit_wall,
            replays_dropped=self.replays.dropped,
            replays_too_large=self.replays.too_large,
            replays_orphaned=w.replays_orphaned,
            requests_renamed=w.renamed,
        )

    async def close(self) -> None:
        """Stop the loops, then write everything still queued, then close. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loops = self._loops
        if loops is not None:
            await cancel_and_wait(loops.retention)
        self.replays.stop()
        if loops is not None:
            # wait() leaves the task's own failure to the drain below.
            await asyncio.wait({loops.replays})
        # Never started, or it failed: what is queued is still written.
        with contextlib.suppress(Exception):
            await self.replays.drain()
        # The writer loop ends by itself once close() has written the queue;
        # cancelling it before that would lose the batch it is committing.
        await self.writer.close()
        if loops is not None:
            await cancel_and_wait(loops.writer)
        await self._conn.close()
