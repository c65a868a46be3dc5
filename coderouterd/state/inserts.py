"""A batch's records into SQLite, inside the writer's transaction (writer.py).

Statements run grouped by SQL, one executemany each. When the database
refuses one record (it breaks a constraint), `insert_each` writes the
records again one by one, each in a savepoint, so that only that record is
lost.
"""

from __future__ import annotations

import sqlite3

import aiosqlite

from coderouterd.state.records import INSERT_REPLAY, AuditRow, Writable, batch_statements


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
    conn: aiosqlite.Connection, writable: list[Writable]
) -> tuple[int, list[Exception]]:
    """Insert each record in a savepoint of its own, leaving out those that
    break a constraint; return the replays orphaned and why each record
    was refused. An audit row is never left out alone: the chain would
    break after it, so the batch fails whole."""
    orphaned = 0
    refused: list[Exception] = []
    for record in writable:
        await conn.execute("SAVEPOINT record")
        try:
            orphaned += await insert(conn, [record])
        except sqlite3.IntegrityError as e:
            if isinstance(record, AuditRow):
                raise
            await conn.execute("ROLLBACK TO record")
            refused.append(e)
        await conn.execute("RELEASE record")
    return orphaned, refused
