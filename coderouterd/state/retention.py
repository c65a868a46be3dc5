"""Retention: old requests go, and the database stays under its size cap.

A pass is a series of steps (`retention_steps`), each a few reads and at
most one short transaction on the writer's connection; a step must run
between two batches, and the state service runs each as a `Writer.maintain`
job of its own, so batches and other jobs (the reads at start-up) wait for
one step at most, never for a whole clean-up. Rows go in chunks of at most
500, so a crash midway keeps the chunks already done. For size, only as
many of the oldest replays go as their recorded sizes say are needed, so a
cap is not overshot by a whole chunk of big rows.

What "size" means here: the bytes of live pages, (page_count -
freelist_count) * page_size. Deleting rows does not shrink the file; the
freed pages go to SQLite's freelist and the next inserts reuse them, so the
file stops growing at about the cap. Measuring the file instead would
never see a deletion and would empty the database.

A record stored as a delta on an earlier one (state/deltas.py) outlives
its base: retention deletes the oldest first. Before a base goes, each
record continuing it that stays is stored whole, in the same transaction,
so no record is left naming one that is gone. One that cannot be read (a
piece already lost, a damaged blob) is left as it was and counted: it was
unreadable anyway, and failing the pass on it would stop every later pass at
the same rows.

Pieces of request bodies go once no record, kept or not yet written, can
name them (piece_cutoff). Over the size cap with no replay left, no kept
record names a piece, so every piece goes, however recent; a step that
deletes them, or replays, calls `forgotten`: the service has the recorder
forget what it wrote and the writer check what the records made until then
name (one naming a piece that is gone is left out and counted). Requests go
for size only while deleting them can bring the database under the cap (the
audit log and budget totals are never deleted) and a round of them frees
something.

Why no VACUUM and no incremental_vacuum: VACUUM rewrites the whole file
(twice its size on disk, the write lock held throughout), and
incremental_vacuum only works on a database created with
auto_vacuum=INCREMENTAL, which this schema is not. The WAL file does not
shrink by itself after a burst of writes or a large deletion: the pass ends
by emptying it (db.truncate_wal), and the writer's journal_size_limit cuts
it down at the next commit after a checkpoint in between.
"""

from __future__ import annotations

import asyncio
import json
import math
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Literal

import aiosqlite
import msgspec

from coderouterd.state.db import immediate, truncate_wal
from coderouterd.state.pieces import PIECE_REFRESH_S
from coderouterd.state.records import BODY_WHOLE
from coderouterd.state.replay import UNREADABLE, compress, request_body

CHUNK = 500
SECONDS_PER_DAY = 86_400.0

Trim = Literal["replays", "pieces", "requests"]
# Called when records not yet written may name replays or pieces just deleted.
Forgotten = Callable[[], None]


class RetentionResult(msgspec.Struct, kw_only=True):
    """What a pass deleted (so far, as its steps yield it)."""

    deleted_requests: int = 0
    # Replays deleted on their own and with their requests.
    deleted_replays: int = 0
    deleted_pieces: int = 0
    deleted_packs: int = 0
    # Kept records continuing a deleted one that could not be read, so not
    # stored whole: each is counted once, in the pass that deletes its base.
    unreadable_replays: int = 0


def age_cutoff(now: float, max_age_days: float) -> float:
    """Requests older than this (ts strictly before it) are past retention."""
    return now - max_age_days * SECONDS_PER_DAY


def next_trim(
    *,
    used_bytes: int,
    max_bytes: int,
    replays_left: bool,
    pieces_left: bool,
    requests_left: bool,
) -> Trim | None:
    """What to delete next to get under max_bytes: replays (the big rows)
    first, then the pieces no kept record names once no replay is left.

    None when under the cap, or when nothing deletable is left (the audit log
    and budget totals are never deleted for size).
    """
    if used_bytes <= max_bytes:
        return None
    if replays_left:
        return "replays"
    if pieces_left:
        return "pieces"
    if requests_left:
        return "requests"
    return None


def piece_cutoff(now: float, oldest_replay_ts: float | None) -> float:
    """Pieces last written before this are named by no record, kept or pending.

    A record at time t naming a piece implies the piece's last_ref >= t -
    PIECE_REFRESH_S (pieces.py), so last_ref < oldest - PIECE_REFRESH_S means
    every record naming it is gone. Records still queued are recent: a
    second PIECE_REFRESH_S before `now` leaves room for them.
    """
    pending = now - 2 * PIECE_REFRESH_S
    if oldest_replay_ts is None:
        return pending
    return min(oldest_replay_ts - PIECE_REFRESH_S, pending)


def oldest_to_delete(sizes: Sequence[int], *, total: int, limit: int) -> int:
    """How many of the oldest rows (sizes oldest first) must go to bring total to limit."""
    n = 0
    while total > limit and n < len(sizes):
        total -= sizes[n]
        n += 1
    return n


async def retention_steps(
    conn: aiosqlite.Connection,
    *,
    now: float,
    max_age_days: float,
    max_bytes: int,
    max_replay_bytes: int | None = None,
    forgotten: Forgotten = lambda: None,
) -> AsyncIterator[RetentionResult]:
    """Apply the age limit, then the cap on replays' total size, then the
    database size cap, one step at a time; each step yields what the pass
    has deleted so far.

    Every step (the code between two yields) is to run between two batches;
    no transaction stays open across a yield. `forgotten` is called in the
    step that deleted replays, or pieces records not yet written may name.
    """
    n = RetentionResult()
    cutoff = age_cutoff(now, max_age_days)
    while ids := await _ids(conn, _EXPIRED, (cutoff, CHUNK)):
        await _delete_requests(conn, ids, n, forgotten)
        yield msgspec.structs.replace(n)
    if max_replay_bytes is not None:
        rows = list(await conn.execute_fetchall("SELECT coalesce(sum(size), 0) FROM replays"))
        total = int(rows[0][0])
        while total > max_replay_bytes:
            deleted, freed = await _delete_oldest_replays(conn, total, max_replay_bytes, n)
            if deleted == 0:
                break
            n.deleted_replays, total = n.deleted_replays + deleted, total - freed
            forgotten()
            yield msgspec.structs.replace(n)
    while await _delete_orphans(conn, now, n):
        yield msgspec.structs.replace(n)
    async for _ in _trim_for_size(conn, now, max_bytes, n, forgotten):
        yield msgspec.structs.replace(n)
    await truncate_wal(conn)
    # The counts of the steps that ended without a yield.
    yield msgspec.structs.replace(n)


async def _trim_for_size(
    conn: aiosqlite.Connection, now: float, max_bytes: int, n: RetentionResult, forgotten: Forgotten
) -> AsyncIterator[None]:
    # Bytes deleting every request would leave; measured once, when needed.
    kept: int | None = None
    while True:
        used = await used_bytes(conn)
        step = next_trim(
            used_bytes=used,
            max_bytes=max_bytes,
            replays_left=await _exists(conn, "replays"),
            pieces_left=await _exists(conn, "replay_pieces") or await _exists(conn, "replay_packs"),
            requests_left=await _exists(conn, "requests"),
        )
        if step == "replays":
            # replays.size stands in for the pages a replay holds; the loop
            # measures again, so an underestimate only costs another round.
            n.deleted_replays += (await _delete_oldest_replays(conn, used, max_bytes, n))[0]
            forgotten()
            yield
            while await _delete_orphans(conn, now, n):
                yield
        elif step == "pieces":
            # No replay is left (checked in this same step): no kept record
            # names a piece, only records not yet written may.
            await _delete_pieces(conn, math.inf, n)
            forgotten()
            yield
        elif step == "requests":
            if kept is None:
                kept = await _kept_bytes(conn)
            if kept > max_bytes:
                return
            ids = await _ids(conn, "SELECT id FROM requests ORDER BY ts LIMIT ?", (CHUNK,))
            await _delete_requests(conn, ids, n, forgotten)
            yield
            if await used_bytes(conn) >= used:
                return
        else:
            return


_EXPIRED = "SELECT id FROM requests WHERE ts < ? ORDER BY ts LIMIT ?"
_DELETE_PIECES = (
    "DELETE FROM replay_pieces WHERE rowid IN"
    " (SELECT rowid FROM replay_pieces WHERE last_ref < ? LIMIT ?)"
)
# A pack's last_ref is never older than that of a piece pointing into it
# (migrations/0004_replay_packs.sql), so the pieces' cutoff serves for it.
_DELETE_PACKS = (
    "DELETE FROM replay_packs WHERE rowid IN"
    " (SELECT rowid FROM replay_packs WHERE last_ref < ? LIMIT ?)"
)


async def _delete_orphans(conn: aiosqlite.Connection, now: float, n: RetentionResult) -> bool:
    """Delete a chunk of the pieces and packs no record can name (piece_cutoff)."""
    rows = list(await conn.execute_fetchall("SELECT min(ts) FROM replays"))
    return await _delete_pieces(conn, piece_cutoff(now, rows[0][0]), n)


async def _delete_pieces(conn: aiosqlite.Connection, cutoff: float, n: RetentionResult) -> bool:
    """Delete a chunk of the pieces last written before `cutoff`, then, once
    none of those is left, of such packs; True if there may be more."""
    async with immediate(conn):
        pieces = await _rowcount(conn, _DELETE_PIECES, (cutoff, CHUNK))
        packs = await _rowcount(conn, _DELETE_PACKS, (cutoff, CHUNK)) if pieces < CHUNK else 0
    n.deleted_pieces += pieces
    n.deleted_packs += packs
    return CHUNK in (pieces, packs)


async def used_bytes(conn: aiosqlite.Connection) -> int:
    page_count = await _pragma_int(conn, "page_count")
    freelist = await _pragma_int(conn, "freelist_count")
    return (page_count - freelist) * await _pragma_int(conn, "page_size")


async def _kept_bytes(conn: aiosqlite.Connection) -> int:
    """The bytes of the pages deleting every request would leave: every other
    table and index, and the schema (dbstat names it either way). 0 where SQLite
    lacks dbstat (a round of requests that frees nothing still ends the trim)."""
    names = [
        str(r[0])
        for r in await conn.execute_fetchall(
            "SELECT name FROM sqlite_master"
            " WHERE rootpage > 0 AND tbl_name NOT IN ('requests', 'attempts')"
        )
    ]
    total = 0
    try:
        for name in ("sqlite_schema", "sqlite_master", *names):
            rows = list(
                await conn.execute_fetchall(
                    "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ? AND aggregate = 1",
                    (name,),
                )
            )
            total += int(rows[0][0])
    except sqlite3.OperationalError:
        return 0
    return total


async def _delete_oldest_replays(
    conn: aiosqlite.Connection, total: int, limit: int, n: RetentionResult
) -> tuple[int, int]:
    """Delete just enough of the oldest replays (up to CHUNK); return (count, their sizes)."""
    oldest = [
        (str(r[0]), int(r[1]))
        for r in await conn.execute_fetchall(
            "SELECT request_id, size FROM replays ORDER BY ts LIMIT ?", (CHUNK,)
        )
    ]
    k = oldest_to_delete([size for _, size in oldest], total=total, limit=limit)
    if k == 0:
        return 0, 0
    deleted, grown = await _delete_replays(conn, [rid for rid, _ in oldest[:k]], n)
    return deleted, sum(size for _, size in oldest[:k]) - grown


async def _delete_requests(
    conn: aiosqlite.Connection, ids: list[str], n: RetentionResult, forgotten: Forgotten
) -> None:
    # Attempts and replays are deleted explicitly rather than by ON DELETE
    # CASCADE, so the counts are exact and nothing depends on foreign_keys=ON.
    param = (json.dumps(ids),)
    async with immediate(conn):
        _, unreadable = await _store_dependents_whole(conn, param[0])
        replays = await _rowcount(
            conn, "DELETE FROM replays WHERE request_id IN (SELECT value FROM json_each(?))", param
        )
        await _rowcount(
            conn, "DELETE FROM attempts WHERE request_id IN (SELECT value FROM json_each(?))", param
        )
        requests = await _rowcount(
            conn, "DELETE FROM requests WHERE id IN (SELECT value FROM json_each(?))", param
        )
    n.deleted_requests += requests
    n.deleted_replays += replays
    n.unreadable_replays += unreadable
    if replays:
        forgotten()


async def _delete_replays(
    conn: aiosqlite.Connection, ids: list[str], n: RetentionResult
) -> tuple[int, int]:
    """Delete these replays; return (count, bytes the records continuing them grew by)."""
    param = json.dumps(ids)
    async with immediate(conn):
        grown, unreadable = await _store_dependents_whole(conn, param)
        deleted = await _rowcount(
            conn,
            "DELETE FROM replays WHERE request_id IN (SELECT value FROM json_each(?))",
            (param,),
        )
    n.unreadable_replays += unreadable
    return deleted, grown


_DEPENDENTS = (
    "SELECT request_id, length(request_body) FROM replays"
    " WHERE base_id IN (SELECT value FROM json_each(?))"
    " AND request_id NOT IN (SELECT value FROM json_each(?))"
)
# SET expressions read the row as it was: size loses the old blob's length.
_STORE_WHOLE = (
    "UPDATE replays SET request_body = ?, body_format = ?, base_id = NULL, base_len = NULL,"
    " size = size - length(request_body) + ? WHERE request_id = ?"
)


async def _store_dependents_whole(conn: aiosqlite.Connection, ids_json: str) -> tuple[int, int]:
    """Store whole each record that continues one of these and is not among
    them; return the bytes they grew by, and how many could not be read (left
    as they are). Call inside the deleting transaction."""
    grown = unreadable = 0
    for request_id, old in await conn.execute_fetchall(_DEPENDENTS, (ids_json, ids_json)):
        try:
            body = await request_body(conn, request_id)
        except UNREADABLE:
            # Unreadable already: nothing to keep, and no reason to keep the base.
            unreadable += 1
            continue
        # A long conversation's body is hundreds of KB: zlib off the event loop.
        blob = await asyncio.to_thread(compress, body)
        grown += len(blob) - old
        await conn.execute(_STORE_WHOLE, (blob, BODY_WHOLE, len(blob), request_id))
    return grown, unreadable


async def _rowcount(
    conn: aiosqlite.Connection, sql: str, params: tuple[str] | tuple[float, int]
) -> int:
    async with conn.execute(sql, params) as cur:
        return max(cur.rowcount, 0)


async def _ids(conn: aiosqlite.Connection, sql: str, params: tuple[float | int, ...]) -> list[str]:
    return [str(r[0]) for r in await conn.execute_fetchall(sql, params)]


async def _exists(
    conn: aiosqlite.Connection,
    table: Literal["replays", "requests", "replay_pieces", "replay_packs"],
) -> bool:
    rows = list(await conn.execute_fetchall(f"SELECT EXISTS (SELECT 1 FROM {table})"))  # noqa: S608 - table is a Literal
    return bool(rows[0][0])


async def _pragma_int(conn: aiosqlite.Connection, name: str) -> int:
    rows = list(await conn.execute_fetchall(f"PRAGMA {name}"))
    return int(rows[0][0])
