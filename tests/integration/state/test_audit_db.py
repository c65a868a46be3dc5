"""The audit reader and verifier against a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest_asyncio

from coderouterd.state.audit import tail, verify
from coderouterd.state.chain import GENESIS, chain_hash

_MIGRATION = Path(__file__).parents[3] / "migrations" / "0001_initial.sql"


@pytest_asyncio.fixture
async def conn(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    async with aiosqlite.connect(tmp_path / "state.db") as db:
        await db.executescript(_MIGRATION.read_text())
        yield db


async def append(db: aiosqlite.Connection, n: int) -> None:
    """Append rows the way the writer does (the writer itself is not under test)."""
    async with db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1") as cur:
        last = await cur.fetchone()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    for _ in range(n):
        seq += 1
        ts = 1_700_000_000.0 + seq / 3
        event = "provider.ejected"
        fields = json.dumps({"provider": f"p{seq % 4}", "attempt": seq})
        digest = chain_hash(prev, seq, ts, event, fields)
        await db.execute(
            "INSERT INTO audit (seq, ts, event, fields, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)",
            (seq, ts, event, fields, prev, digest),
        )
        prev = digest
    await db.commit()


async def test_fifty_appended_rows_verify(conn: aiosqlite.Connection) -> None:
    await append(conn, 50)
    result = await verify(conn)
    assert result.ok
    assert result.rows_checked == 50


async def test_an_updated_row_is_named(conn: aiosqlite.Connection) -> None:
    await append(conn, 50)
    await conn.execute(
        "UPDATE audit SET fields = ? WHERE seq = 23", (json.dumps({"provider": "nobody"}),)
    )
    await conn.commit()
    result = await verify(conn)
    assert not result.ok
    assert result.first_bad_seq == 23
    assert result.problem == "row 23 was edited (its hash does not match its content)"


async def test_a_deleted_row_is_named(conn: aiosqlite.Connection) -> None:
    await append(conn, 50)
    await conn.execute("DELETE FROM audit WHERE seq = 31")
    await conn.commit()
    result = await verify(conn)
    assert result.first_bad_seq == 31
    assert result.problem == "row 31 is missing (deleted?)"
    assert result.rows_checked == 30


async def test_a_deleted_last_row_is_named_given_the_anchor(conn: aiosqlite.Connection) -> None:
    await append(conn, 50)
    await conn.execute("DELETE FROM audit WHERE seq = 50")
    await conn.commit()
    assert (await verify(conn)).ok
    assert (await verify(conn, expected_last_seq=50)).first_bad_seq == 50


async def test_verify_reads_sqlite_row_objects(conn: aiosqlite.Connection) -> None:
    await append(conn, 5)
    conn.row_factory = aiosqlite.Row
    assert (await verify(conn)).ok
    assert [row.seq for row in await tail(conn, 2)] == [4, 5]


async def test_tail_returns_the_last_rows_oldest_first(conn: aiosqlite.Connection) -> None:
    await append(conn, 12)
    rows = await tail(conn, 3)
    assert [row.seq for row in rows] == [10, 11, 12]
    assert rows[0].fields == {"provider": "p2", "attempt": 10}
    assert rows[-1].prev_hash == rows[-2].hash
    assert await tail(conn, 0) == []
    assert len(await tail(conn, 100)) == 12
