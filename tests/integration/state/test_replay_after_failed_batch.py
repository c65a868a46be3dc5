"""Replay records after a batch that carried their pieces was lost, against a
real SQLite file whose write lock another connection holds: every record
stored reads back whole; one naming a piece that is not stored is left out
and counted."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiosqlite
import pytest
import pytest_asyncio

from coderouterd.state import pieces
from coderouterd.state.db import open_db
from coderouterd.state.recorder import PendingReplay, ReplayRecorder
from coderouterd.state.records import BODY_PIECES, PieceRow, Record, ReplayRow
from coderouterd.state.replay import compress, get_replay, request_body
from coderouterd.state.writer import Writer
from tests.integration.state.support_db import ManualClock, request_row
from tests.integration.state.test_replay_deltas import turn
from tests.integration.state.test_replay_pieces import NOW, pending
from tests.unit.state.test_pieces import conversation, fields_of


class Lock:
    """Another process's write transaction on the database (an sqlite3 shell,
    a backup), held until the writer's next batch fails on it."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        self.held = False

    def take(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self._conn.execute("ROLLBACK")
            self.held = False

    def close(self) -> None:
        self.release()
        self._conn.close()


@pytest.fixture
def lock(db_file: Path) -> Iterator[Lock]:
    held = Lock(db_file)
    yield held
    held.close()


@pytest_asyncio.fixture
async def impatient(db_file: Path) -> AsyncIterator[aiosqlite.Connection]:
    """The writer's connection, waiting 50 ms for the lock instead of 5 s."""
    c = await open_db(db_file)
    await c.execute("PRAGMA busy_timeout = 50")
    yield c
    await c.close()


class Setup:
    """A writer and a recorder wired as the daemon wires them: a failed batch
    makes the recorder forget what it believed written. The failure also ends
    the lock, so the next batch goes through."""

    def __init__(self, conn: aiosqlite.Connection, lock: Lock, *, max_batch: int = 256) -> None:
        self.failures = 0
        self.writer = Writer(conn, clock=ManualClock(), max_batch=max_batch, on_error=self.failed)
        self.recorder = ReplayRecorder(self.writer, max_record_bytes=1 << 22, gather_s=0)
        self._lock = lock

    def failed(self, exc: Exception, lost: int) -> None:
        self.failures += 1
        self.recorder.forget()
        self._lock.release()

    async def build(self, *records: PendingReplay) -> None:
        """Each record's request row and its replay record, built and queued."""
        for p in records:
            self.writer.submit(request_row(p.request_id, ts=p.ts))
            self.recorder.submit(p)
            await self.recorder.drain()


async def stored_bodies(conn: aiosqlite.Connection) -> dict[str, bytes | Exception]:
    out: dict[str, bytes | Exception] = {}
    for (rid,) in await conn.execute_fetchall("SELECT request_id FROM replays"):
        try:
            out[rid] = await request_body(conn, rid)
        except pieces.MissingPieceError as exc:
            out[rid] = exc
    return out


async def test_a_record_built_before_its_pieces_batch_failed_is_left_out_and_counted(
    impatient: aiosqlite.Connection, lock: Lock
) -> None:
    # Two records to a batch: the first record's request row and replay.
    s = Setup(impatient, lock, max_batch=2)
    lock.take()
    first, second = pending("a", conversation(30), NOW), pending("b", conversation(36), NOW + 1)
    # "b" is built while "a"'s batch waits for the lock: it names a's pieces.
    await s.build(first, second)
    await s.writer.flush()
    # Built after the failure: it writes the pieces again.
    third = pending("c", conversation(40), NOW + 2)
    await s.build(third)
    await s.writer.close()
    stats = s.writer.stats()
    assert (s.failures, stats.failed_rows, stats.replays_orphaned) == (1, 2, 1)
    assert sorted(await stored_bodies(impatient)) == ["c"]
    rec = await get_replay(impatient, "c")
    assert rec is not None and json.loads(rec.request_body) == conversation(40)


async def test_a_record_continuing_one_left_out_for_a_lost_piece_is_left_out_too(
    impatient: aiosqlite.Connection, lock: Lock
) -> None:
    s = Setup(impatient, lock, max_batch=2)
    lock.take()
    first = turn("a", 30, NOW)
    # Another conversation with the same system prompt and tools, and a turn
    # that continues it; all three built before the failure.
    other = dataclasses.replace(turn("b", 36, NOW + 1), conversation=2)
    later = dataclasses.replace(turn("b2", 38, NOW + 2), conversation=2)
    await s.build(first, other, later)
    await s.writer.close()
    stats = s.writer.stats()
    assert (s.failures, stats.failed_rows, stats.replays_orphaned) == (1, 2, 2)
    assert await stored_bodies(impatient) == {}


async def test_a_lost_piece_written_again_is_named_again(
    impatient: aiosqlite.Connection, lock: Lock
) -> None:
    writer = Writer(impatient, clock=ManualClock(), on_error=lambda exc, lost: lock.release())
    body = conversation(30)
    lock.take()
    await write(writer, writes("w1", body))
    # Named by a record built before the failure, never written since.
    await write(writer, names("r1", body))
    # Written again, and named in the same batch.
    await write(writer, writes("w2", body), names("r2", body))
    await write(writer, names("r3", body))
    stats = writer.stats()
    assert (stats.failed_rows, stats.replays_orphaned) == (2, 1)
    bodies = await stored_bodies(impatient)
    assert sorted(bodies) == ["r2", "r3", "w2"]
    assert all(not isinstance(b, Exception) and json.loads(b) == body for b in bodies.values())


async def test_a_record_naming_a_piece_whose_writer_was_refused_is_left_out(
    impatient: aiosqlite.Connection,
) -> None:
    writer = Writer(impatient, clock=ManualClock(), on_error=lambda exc, lost: None)
    body = conversation(30)
    await write(writer, names("x", {"model": "m"}))
    # Its request already has a replay: refused, and the pieces it carried
    # with it; the batch's other records go in.
    await write(writer, writes("x", body, request=False), names("y", body))
    await write(writer, names("z", body))
    stats = writer.stats()
    assert (stats.failed_rows, stats.replays_orphaned) == (1, 2)
    assert sorted(await stored_bodies(impatient)) == ["x"]
    assert await impatient.execute_fetchall("SELECT digest FROM replay_pieces") == []


def _row(rid: str, body: dict[str, object], **kw: object) -> ReplayRow:
    recipe, _ = pieces.split(fields_of(body))
    return ReplayRow(
        request_id=rid, ts=NOW, dialect="anthropic", profile="default", provider="local",
        stream=False, request_headers="{}", request_body=compress(recipe), response_body=None,
        response_truncated=False, size=len(recipe), body_format=BODY_PIECES,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def writes(rid: str, body: dict[str, object], *, request: bool = True) -> list[Record]:
    """A record that writes every piece its body names, with its request row."""
    _, parts = pieces.split(fields_of(body))
    new = tuple(
        PieceRow(digest=p.digest, data=compress(p.data), size=len(p.data), last_ref=NOW)
        for p in parts
    )
    row = _row(rid, body, new_pieces=new)
    return [request_row(rid, ts=NOW), row] if request else [row]


def names(rid: str, body: dict[str, object]) -> list[Record]:
    """A record that only names its body's pieces, with its request row."""
    _, parts = pieces.split(fields_of(body))
    return [request_row(rid, ts=NOW), _row(rid, body, named_pieces=tuple(p.digest for p in parts))]


async def write(writer: Writer, *records: list[Record]) -> None:
    """These records, as one batch."""
    for group in records:
        for r in group:
            writer.submit(r)
    await writer.flush()
