"""Forward-only schema migrations, each applied in one transaction with its record.

Migrations are the files `NNNN_name.sql` of the repository's top-level
`migrations/` directory, shipped inside the package as
`coderouterd/migrations/` (a symlink in the source tree; see pyproject.toml).
`schema_migrations` records which ones a database has, so the runner applies
only the missing ones, in version order.

A migration's statements and its `schema_migrations` row commit together or
not at all: SQLite's DDL is transactional, and the statements run one by
one inside BEGIN IMMEDIATE (`executescript` would commit on its own first).
"""

from __future__ import annotations

import itertools
import re
import sqlite3
from importlib import resources

import aiosqlite
import msgspec

from coderouterd.state.db import StateError, immediate

_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
)
"""


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str


class AppliedMigration(msgspec.Struct, frozen=True):
    version: int
    name: str
    applied_at: float


class MigrationStatus(msgspec.Struct, frozen=True):
    current: int
    latest: int
    pending: list[Migration]
    applied: list[AppliedMigration]


def discover(package: str = "coderouterd", directory: str = "migrations") -> list[Migration]:
    """The migrations shipped with the package, in version order."""
    found: list[Migration] = []
    for entry in (resources.files(package) / directory).iterdir():
        match = _FILENAME.match(entry.name)
        if match is None:
            continue
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return _checked(found)


def _checked(migrations: list[Migration]) -> list[Migration]:
    ordered = sorted(migrations, key=lambda m: m.version)
    for a, b in itertools.pairwise(ordered):
        if a.version == b.version:
            raise StateError(f"two migrations share version {a.version}: {a.name}, {b.name}")
    return ordered


def split_statements(sql: str) -> list[str]:
    """Split a script into statements with SQLite's own tokenizer.

    `sqlite3.complete_statement` knows strings, comments and trigger bodies,
    so a ';' inside any of them does not end a statement. A trailing piece
    without ';' is kept unless it holds nothing but whitespace and comments.
    """
    statements: list[str] = []
    start = 0
    for i, ch in enumerate(sql):
        if ch == ";" and sqlite3.complete_statement(sql[start : i + 1]):
            piece = sql[start:i]
            if not _only_comments(piece):
                statements.append(piece.strip() + ";")
            start = i + 1
    if not _only_comments(sql[start:]):
        statements.append(sql[start:].strip())
    return statements


def _only_comments(text: str) -> bool:
    # Cutting comments out can empty a piece only if it holds no keyword at
    # all, so a '--' inside a string literal cannot make a statement vanish.
    stripped = re.sub(r"--[^\n]*|/\*.*?(\*/|$)", "", text, flags=re.DOTALL)
    return not stripped.strip()


async def migrate(
    conn: aiosqlite.Connection, migrations: list[Migration], *, now: float
) -> list[Migration]:
    """Apply the pending migrations in order; return the ones this call applied.

    A database newer than the newest known migration is refused untouched:
    running old code on a newer schema would write rows the newer code
    cannot trust.
    """
    known = _checked(list(migrations))
    try:
        await conn.execute(_CREATE_TABLE)
        applied = {a.version for a in await _applied(conn)}
    except sqlite3.Error as e:
        raise StateError(f"cannot read the schema version: {e}") from e
    _refuse_newer(applied, known)
    done: list[Migration] = []
    for m in known:
        if m.version not in applied and await _apply(conn, m, now=now):
            done.append(m)
    return done


def _refuse_newer(applied: set[int], known: list[Migration]) -> None:
    latest = known[-1].version if known else 0
    newest = max(applied, default=0)
    if newest > latest:
        raise StateError(
            f"database schema version {newest} is newer than this coderouterd knows "
            f"({latest}); upgrade coderouterd or use another state_dir"
        )


async def _apply(conn: aiosqlite.Connection, m: Migration, *, now: float) -> bool:
    try:
        async with immediate(conn):
            # Another process may have applied it while we waited for the lock.
            async with conn.execute(
                "SELECT 1 FROM schema_migrations WHERE version = ?", (m.version,)
            ) as cur:
                if await cur.fetchone() is not None:
                    return False
            for statement in split_statements(m.sql):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (m.version, m.name, now),
            )
    except sqlite3.Error as e:
        raise StateError(f"migration {m.version:04d}_{m.name} failed: {e}") from e
    return True


async def _applied(conn: aiosqlite.Connection) -> list[AppliedMigration]:
    async with conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ) as cur:
        if await cur.fetchone() is None:
            return []
    rows = await conn.execute_fetchall(
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
    )
    return [AppliedMigration(int(r[0]), str(r[1]), float(r[2])) for r in rows]


async def status(conn: aiosqlite.Connection, migrations: list[Migration]) -> MigrationStatus:
    """What a database has and what it lacks; reads only, so a reader may call it."""
    known = _checked(list(migrations))
    applied = await _applied(conn)
    versions = {a.version for a in applied}
    return MigrationStatus(
        current=max(versions, default=0),
        latest=known[-1].version if known else 0,
        pending=[m for m in known if m.version not in versions],
        applied=applied,
    )
