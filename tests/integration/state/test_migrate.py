"""The migration runner against real database files."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest
import pytest_asyncio

from coderouterd.state.db import StateError, db_path, open_db
from coderouterd.state.migrate import AppliedMigration, Migration, discover, migrate, status

ONE = Migration(1, "first", "CREATE TABLE a (x INTEGER);\n-- why; not\nCREATE INDEX a_x ON a (x);")
TWO = Migration(
    2, "second", "CREATE TABLE b (y TEXT DEFAULT 'p;q');\nINSERT INTO b DEFAULT VALUES;"
)
BROKEN = Migration(2, "broken", "CREATE TABLE half (z);\nINSERT INTO no_such_table VALUES (1);")


@pytest_asyncio.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    c = await open_db(db_path(tmp_path / "state"))
    yield c
    await c.close()


async def tables(conn: aiosqlite.Connection) -> list[str]:
    rows = await conn.execute_fetchall(
        "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    )
    return [r[0] for r in rows]


async def test_the_shipped_migrations_build_the_schema_from_empty(
    conn: aiosqlite.Connection,
) -> None:
    shipped = discover()
    assert (shipped[0].version, shipped[0].name) == (1, "initial")
    repo_file = Path(__file__).parents[3] / "migrations" / "0001_initial.sql"
    assert shipped[0].sql == repo_file.read_text()
    applied = await migrate(conn, shipped, now=5.0)
    assert applied == shipped
    assert set(await tables(conn)) >= {
        "requests", "attempts", "replays", "budget_totals", "exclusions", "audit",
        "schema_migrations",
    }  # fmt: skip
    assert await migrate(conn, shipped, now=6.0) == []


async def test_migrations_apply_step_by_step_and_status_follows(
    conn: aiosqlite.Connection,
) -> None:
    before = await status(conn, [ONE, TWO])
    assert (before.current, before.latest, before.pending, before.applied) == (0, 2, [ONE, TWO], [])
    assert await migrate(conn, [ONE], now=10.0) == [ONE]
    middle = await status(conn, [ONE, TWO])
    assert (middle.current, middle.pending) == (1, [TWO])
    assert await migrate(conn, [TWO, ONE], now=20.0) == [TWO]
    after = await status(conn, [ONE, TWO])
    assert after.current == after.latest == 2
    assert after.pending == []
    assert after.applied == [
        AppliedMigration(1, "first", 10.0),
        AppliedMigration(2, "second", 20.0),
    ]
    assert await conn.execute_fetchall("SELECT y FROM b") == [("p;q",)]


async def test_a_migration_failing_halfway_leaves_nothing_behind(
    conn: aiosqlite.Connection,
) -> None:
    with pytest.raises(StateError, match="0002_broken"):
        await migrate(conn, [ONE, BROKEN], now=1.0)
    assert "half" not in await tables(conn)
    assert (await status(conn, [ONE, BROKEN])).applied == [AppliedMigration(1, "first", 1.0)]
    assert not conn.in_transaction
    # The fixed migration applies cleanly afterwards.
    assert await migrate(conn, [ONE, TWO], now=2.0) == [TWO]


async def test_a_newer_database_is_refused_and_left_untouched(
    conn: aiosqlite.Connection,
) -> None:
    await migrate(conn, [ONE, TWO], now=1.0)
    schema = await conn.execute_fetchall("SELECT type, name, sql FROM sqlite_master ORDER BY name")
    with pytest.raises(StateError) as err:
        await migrate(conn, [ONE], now=2.0)
    assert str(err.value) == (
        "database schema version 2 is newer than this coderouterd knows (1); "
        "upgrade coderouterd or use another state_dir"
    )
    after = await conn.execute_fetchall("SELECT type, name, sql FROM sqlite_master ORDER BY name")
    assert after == schema
    assert (await status(conn, [ONE, TWO])).current == 2


async def test_duplicate_versions_are_refused(conn: aiosqlite.Connection) -> None:
    with pytest.raises(StateError, match="share version 2"):
        await migrate(conn, [ONE, TWO, BROKEN], now=1.0)
    assert await tables(conn) == []


async def test_open_db_creates_private_files_in_wal_mode(tmp_path: Path) -> None:
    path = db_path(tmp_path / "deep" / "state")
    conn = await open_db(path, synchronous="FULL")
    try:
        await migrate(conn, discover(), now=1.0)
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(f"{path}-wal").st_mode) == 0o600
        pragmas = [
            (await conn.execute_fetchall(f"PRAGMA {p}"))[0][0]  # type: ignore[index]
            for p in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
        ]
        assert pragmas == ["wal", 2, 5000, 1]
    finally:
        await conn.close()


async def test_a_reader_cannot_write_and_cannot_create(tmp_path: Path) -> None:
    path = db_path(tmp_path / "state")
    with pytest.raises(StateError, match="cannot open"):
        await open_db(path, readonly=True)
    assert not path.exists()
    writer = await open_db(path)
    await migrate(writer, [ONE], now=1.0)
    await writer.close()
    reader = await open_db(path, readonly=True)
    try:
        assert (await status(reader, [ONE])).current == 1
        with pytest.raises(aiosqlite.OperationalError):
            await reader.execute("INSERT INTO a VALUES (1)")
    finally:
        await reader.close()
