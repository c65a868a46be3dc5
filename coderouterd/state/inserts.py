"""A batch's records into SQLite, inside the writer's transaction (writer.py).

Statements run grouped by SQL, one executemany each. When the database
refuses one record (it breaks a constraint), `insert_each` writes the
records again one by one, each in a savepoint. A request whose id is taken
(a client that sent an x-request-id again long after its first use) is
stored under that id with a suffix, and its replay record follows it;
any other record refused is left out alone.
"""

from __future__ import annotations

import secrets
import sqlite3

import aiosqlite
import msgspec

from coderouterd.state.records import (
    INSERT_REPLAY,
    AuditRow,
    FinishedRequest,
    ReplayRow,
    RequestRow,
    Writable,
    batch_statements,
)


async def insert(conn: aiosqlite.Connection, writable: list[Writable]) -> int:
    """Insert the records, grouped by statement; return the replays left
    out for want of their request row or base (INSERT_REPLAY's guard)."""
    orphaned = 0
    for sql, params in batch_statements(writable):
        cursor = await conn.executemany(sql, params)
        if sql == INSERT_REPLAY:
            orphaned += len(params) - max(cursor.rowcount, 0)
    return orphaned


async def insert_each(
    conn: aiosqlite.Connection, writable: list[Writable], renames: dict[str, str]
) -> tuple[int, list[Exception]]:
    """Insert each record in a savepoint of its own; return the replays
    orphaned and why each record left out was refused. A request whose id
    is taken goes in under a new one, noted in `renames` (its replay
    record, in this batch or a later one, is renamed with it: rename()).
    An audit row is never left out alone: the chain would break after it,
    so the batch fails whole."""
    orphaned = 0
    refused: list[Exception] = []
    for given in writable:
        record = rename(given, renames)
        await conn.execute("SAVEPOINT record")
        try:
            orphaned += await insert(conn, [record])
        except sqlite3.IntegrityError as e:
            if isinstance(record, AuditRow):
                raise
            await conn.execute("ROLLBACK TO record")
            moved = _moved(record, e)
            if moved is None:
                refused.append(e)
            else:
                try:
                    orphaned += await insert(conn, [moved])
                    renames[_request_id(record)] = _request_id(moved)
                except sqlite3.IntegrityError as again:
                    # Refused for something else too: left out alone after all.
                    await conn.execute("ROLLBACK TO record")
                    refused.append(again)
        await conn.execute("RELEASE record")
    return orphaned, refused


class Renames:
    """Requests stored under a new id, by the id that was taken (bounded,
    oldest out): their replay records may come in later batches."""

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self.by_id: dict[str, str] = {}
        self.count = 0

    def apply(self, records: list[Writable]) -> list[Writable]:
        return [rename(r, self.by_id) for r in records] if self.by_id else records

    def keep(self, found: dict[str, str]) -> list[tuple[str, str]]:
        """Keep the renames of a committed batch; return the new ones."""
        new = [(a, b) for a, b in found.items() if self.by_id.get(a) != b]
        for client_id, stored_id in new:
            self.by_id.pop(client_id, None)
            self.by_id[client_id] = stored_id
        self.count += len(new)
        while len(self.by_id) > self._limit:
            del self.by_id[next(iter(self.by_id))]
        return new


def rename(record: Writable, renames: dict[str, str]) -> Writable:
    """A replay record of a request stored under a new id, pointed at it."""
    if not renames or not isinstance(record, ReplayRow):
        return record
    new_id = renames.get(record.request_id, record.request_id)
    base_id = renames.get(record.base_id, record.base_id) if record.base_id else None
    if new_id == record.request_id and base_id == record.base_id:
        return record
    return msgspec.structs.replace(record, request_id=new_id, base_id=base_id)


def _moved(record: Writable, error: sqlite3.IntegrityError) -> Writable | None:
    """The request under a fresh id, if its id is what the database refused."""
    if "requests.id" not in str(error):
        return None
    if isinstance(record, FinishedRequest):
        fresh = _fresh(record.row.id)
        return msgspec.structs.replace(record, row=msgspec.structs.replace(record.row, id=fresh))
    if isinstance(record, RequestRow):
        return msgspec.structs.replace(record, id=_fresh(record.id))
    return None


def _fresh(request_id: str) -> str:
    # The client's id stays readable in front: an operator finds both.
    return f"{request_id}.{secrets.token_hex(4)}"


def _request_id(record: Writable) -> str:
    if isinstance(record, FinishedRequest):
        return record.row.id
    assert isinstance(record, RequestRow)
    return record.id
