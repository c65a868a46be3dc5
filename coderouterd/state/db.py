"""Opening the state database, and the one way this package writes: a transaction.

The daemon keeps a single writer connection (the Writer's task owns it) and
opens separate read-only connections for readers; WAL lets readers see the
last commit without waiting for the writer.

A reader of a database in WAL mode needs its `-shm` file, which SQLite
creates beside it. Where it cannot (a read-only directory) and no WAL pages
are waiting, the main file holds everything, and the reader opens it as
immutable instead.

`synchronous=NORMAL` in WAL mode survives a crash of the process: a commit
is in the WAL file when COMMIT returns. Only a power loss or OS crash can
take back the last commits; `FULL` closes that gap at the price of an fsync
per commit.

The `-wal` file keeps its largest size until something truncates it: one
burst of big records would otherwise hold that much disk for as long as the
daemon runs. The writer's connection sets `journal_size_limit`, so once a
checkpoint has copied the WAL back, the next commit that starts it over
also cuts the file down to JOURNAL_SIZE_LIMIT; `truncate_wal` (after each
retention pass) empties it, when no reader is in the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import aiosqlite

from coderouterd.errors import CoderouterError
from coderouterd.owner_only import private_file

DB_FILENAME = "coderouterd.db"
BUSY_TIMEOUT_MS = 5000
# Above what the automatic checkpoint (every 1000 pages, about 4 MB) lets
# the WAL reach in ordinary traffic, so only a burst makes a commit truncate it.
JOURNAL_SIZE_LIMIT = 8 << 20
# Rows a cursor fetches at a time: aiosqlite.connect's own default.
_ITER_CHUNK_SIZE = 64

Synchronous = Literal["NORMAL", "FULL"]


class StateError(CoderouterError):
    """The state database cannot be opened, migrated or used as asked."""


def db_path(state_dir: Path) -> Path:
    return state_dir / DB_FILENAME


async def open_db(
    path: Path, *, synchronous: Synchronous = "NORMAL", readonly: bool = False
) -> aiosqlite.Connection:
    """Open the database; the writer's connection creates it, a reader's never does.

    Connections run with isolation_level=None: Python's sqlite3 then never
    opens transactions behind our back, so `immediate()` is the only place
    a transaction starts and every commit is explicit.
    """
    if synchronous not in ("NORMAL", "FULL"):
        # It is interpolated into a PRAGMA, so it must be one of the two words.
        raise ValueError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
    if readonly:
        return await _open_reader(path)
    try:
        _create_private(path)
        conn = await _connect(str(path), isolation_level=None)
    except (OSError, sqlite3.Error) as e:
        raise StateError(f"cannot open state database {path}: {e}") from e
    try:
        await _configure(conn, synchronous=synchronous, readonly=False)
    except (sqlite3.Error, StateError) as e:
        await conn.close()
        if isinstance(e, StateError):
            raise
        raise StateError(f"cannot configure state database {path}: {e}") from e
    return conn


def read_error(path: Path, exc: sqlite3.Error, *, doing: str = "read") -> StateError:
    """A database SQLite cannot open or read, said with what to do about it."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    if name == "SQLITE_NOTADB":
        return StateError(
            f"{path} is not an SQLite database ({exc}): check server.state_dir; "
            "moved aside, a new one is created when the daemon starts"
        )
    if name.startswith("SQLITE_CORRUPT"):
        return StateError(
            f"{path} is damaged ({exc}): `coderouterd db status` runs SQLite's integrity "
            "check; restore a backup, or move it aside and the daemon starts a new one"
        )
    return StateError(f"cannot {doing} state database {path}: {exc}")


async def _open_reader(path: Path) -> aiosqlite.Connection:
    try:
        return await _reader(path, immutable=False)
    except sqlite3.Error as e:
        if getattr(e, "sqlite_errorcode", None) != sqlite3.SQLITE_CANTOPEN:
            raise read_error(path, e, doing="open") from e
        if _wal_waiting(path):
            raise StateError(
                f"cannot read {path}: pages not yet in it wait in {path.name}-wal, and "
                f"SQLite cannot create {path.name}-shm in {path.parent} to read them ({e}); "
                "run this as the user the daemon runs as, or with that directory writable"
            ) from e
    try:
        return await _reader(path, immutable=True)
    except sqlite3.Error as e:
        raise read_error(path, e, doing="open") from e


async def _reader(path: Path, *, immutable: bool) -> aiosqlite.Connection:
    conn = await _connect(_readonly_uri(path, immutable=immutable), uri=True, isolation_level=None)
    try:
        await _configure(conn, synchronous="NORMAL", readonly=True)
        # Connecting opens no file; the first read does, and finds what is wrong with it.
        await conn.execute_fetchall("SELECT count(*) FROM sqlite_master")
    except BaseException:
        await conn.close()
        raise
    return conn


async def _connect(database: str, **kwargs: Any) -> aiosqlite.Connection:
    """aiosqlite's connection, the file opened here first: a connect failing
    in aiosqlite's own thread stops that thread with a future nobody awaits,
    and the thread then reports into the event loop, which a command ending
    on the error has closed (a traceback after the error's message)."""
    opened = await asyncio.to_thread(
        functools.partial(sqlite3.connect, database, check_same_thread=False, **kwargs)
    )
    # Used only from aiosqlite's thread from here on.
    return await aiosqlite.Connection(lambda: opened, _ITER_CHUNK_SIZE)


def _wal_waiting(path: Path) -> bool:
    """Whether the WAL file may hold pages the main file lacks (when in doubt, it may)."""
    try:
        return path.with_name(path.name + "-wal").stat().st_size > 0
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _readonly_uri(path: Path, *, immutable: bool = False) -> str:
    # Percent-encode so a '?' or '#' in a directory name stays part of the path.
    # immutable: no locks, no -shm; only for a file no writer is changing.
    flag = "&immutable=1" if immutable else ""
    return f"file:{quote(str(path.absolute()))}?mode=ro{flag}"


def _create_private(path: Path) -> None:
    # The request log and replays hold prompts: owner-only from the first
    # byte, and made so when found more open (copied in, restored from a
    # backup). SQLite gives new -wal and -shm files the database file's
    # permissions; those already there are made owner-only too.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for suffix in ("", "-wal", "-shm"):
        private_file(path.with_name(path.name + suffix))


async def _configure(conn: aiosqlite.Connection, *, synchronous: str, readonly: bool) -> None:
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if readonly:
        # WAL is a property of the file, set by the writer; a reader cannot change it.
        await conn.execute("PRAGMA query_only = ON")
        return
    async with conn.execute("PRAGMA journal_mode = WAL") as cur:
        row = await cur.fetchone()
    mode = str(row[0]).lower() if row else ""
    if mode != "wal":
        # Readers would block the writer and the durability promise would not hold.
        raise StateError(f"state database cannot use WAL (journal_mode is {mode!r})")
    await conn.execute(f"PRAGMA synchronous = {synchronous}")
    await conn.execute("PRAGMA foreign_keys = ON")
    await conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")


async def truncate_wal(conn: aiosqlite.Connection) -> None:
    """Copy the WAL into the database and empty the `-wal` file.

    Not done while a reader still reads from the WAL (a CLI command): this
    never waits for one (busy_timeout 0 meanwhile), so the writer's batches
    are not held up; what could be copied is, and the next call tries again.
    Call outside a transaction.
    """
    await conn.execute("PRAGMA busy_timeout = 0")
    try:
        # A reader in the way shows as busy=1 in the row it returns, not as an error.
        await conn.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


@contextlib.asynccontextmanager
async def immediate(conn: aiosqlite.Connection) -> AsyncIterator[None]:
    """One write transaction: BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.

    IMMEDIATE takes the write lock up front, so a second process waits
    (busy_timeout) at BEGIN instead of failing halfway through the batch.
    """
    if conn.in_transaction:
        # Only a task cancelled mid-rollback leaves one open; every later BEGIN
        # would fail on it.
        await _rollback_quietly(conn)
    await conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        await conn.execute("COMMIT")
    except BaseException:
        await _rollback_quietly(conn)
        raise


async def _rollback_quietly(conn: aiosqlite.Connection) -> None:
    # The error that brought us here is the one worth reporting; SQLite may
    # already have rolled back on its own (e.g. SQLITE_FULL).
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            await conn.execute("ROLLBACK")
