"""A record's new pieces written as one pack, against a real SQLite file:
read back byte for byte, fewer bytes than piece by piece, and kept exactly
as long as a piece points into it."""

from __future__ import annotations

import json
from pathlib import Path

import aiosqlite
import pytest

from coderouterd.state import pieces
from coderouterd.state.db import db_path, open_db
from coderouterd.state.migrate import discover, migrate
from coderouterd.state.pieces import PIECE_REFRESH_S, MissingPieceError
from coderouterd.state.records import BODY_PIECES, PackRow, PieceRow
from coderouterd.state.replay import compress, get_replay
from tests.integration.state.support_db import count, enforce_retention
from tests.integration.state.test_replay_pieces import NOW, body_of, record
from tests.unit.state.test_pieces import conversation, fields_of


async def test_a_first_turns_new_pieces_are_one_pack(conn: aiosqlite.Connection) -> None:
    body = conversation(40)
    await record(conn, [("a", body, NOW)])
    assert await body_of(conn, "a") == body
    assert await count(conn, "replay_packs") == 1
    rows = await conn.execute_fetchall(
        "SELECT length(data), pack, pack_at, size FROM replay_pieces"
    )
    (pack,) = {r[1] for r in rows}
    assert pack is not None and all(r[0] == 0 for r in rows)
    # The places tile the pack's data, in order.
    places = sorted((r[2], r[3]) for r in rows)
    assert [at for at, _ in places] == [0, *(at + n for at, n in places[:-1])]
    # Compressed together they take fewer bytes than one by one (5.4 KB against
    # 9.7 KB here; pieces of a few hundred bytes compress poorly alone).
    _, parts = pieces.split(fields_of(body))
    one_by_one = sum(len(compress(p.data)) for p in parts)
    ((packed,),) = await conn.execute_fetchall("SELECT length(data) FROM replay_packs")
    assert packed < 0.7 * one_by_one, (packed, one_by_one)


async def test_a_single_new_piece_keeps_its_own_data(conn: aiosqlite.Connection) -> None:
    # The second turn of the same conversation, a while later, with nothing but
    # its open run new: it continues the first as a delta, so make it a new
    # conversation that shares all but one piece instead.
    first, second = conversation(40), conversation(40)
    second["tools"] = [*second["tools"], {"name": "extra", "input_schema": {"type": "object"}}]
    await record(conn, [("a", first, NOW), ("b", second, NOW + 1)])
    assert await body_of(conn, "b") == second
    assert await count(conn, "replay_packs") == 1
    rows = await conn.execute_fetchall("SELECT length(data) FROM replay_pieces WHERE pack IS NULL")
    assert len(rows) == 1 and rows[0][0] > 0


async def test_a_record_whose_pack_is_gone_cannot_be_read(conn: aiosqlite.Connection) -> None:
    await record(conn, [("a", conversation(40), NOW)])
    await conn.execute("DELETE FROM replay_packs")
    await conn.commit()
    with pytest.raises(MissingPieceError):
        await get_replay(conn, "a")


async def test_a_pack_goes_once_every_piece_in_it_was_written_again(
    conn: aiosqlite.Connection,
) -> None:
    old, new = conversation(30), conversation(36)
    # "new" comes after the refresh time: every piece it names is written again,
    # "old"'s among them, into a pack of its own.
    later = NOW + PIECE_REFRESH_S + 5
    await record(conn, [("old", old, NOW), ("new", new, later)])
    assert await count(conn, "replay_packs") == 2
    await conn.execute("DELETE FROM replays WHERE request_id = 'old'")
    await conn.commit()
    result = await enforce_retention(
        conn, now=later + 2 * PIECE_REFRESH_S, max_age_days=3650, max_bytes=1 << 30
    )
    assert (result.deleted_packs, await count(conn, "replay_packs")) == (1, 1)
    assert await body_of(conn, "new") == new
    # Once no record is left, the last pack goes with its pieces.
    await conn.execute("DELETE FROM replays")
    await conn.commit()
    result = await enforce_retention(
        conn, now=later + 4 * PIECE_REFRESH_S, max_age_days=3650, max_bytes=1 << 30
    )
    assert result.deleted_packs == 1
    assert await count(conn, "replay_packs") == await count(conn, "replay_pieces") == 0


async def test_a_piece_takes_the_newest_write_whole(conn: aiosqlite.Connection) -> None:
    async def write(*rows: PieceRow | PackRow) -> None:
        for row in rows:
            for sql, params in row.statements():
                await conn.execute(sql, params)
        await conn.commit()

    async def piece() -> tuple[object, ...]:
        rows = await conn.execute_fetchall(
            "SELECT data, size, last_ref, pack, pack_at FROM replay_pieces"
        )
        return tuple(rows[0])

    d = pieces.digest(b"p")
    await write(
        PackRow(digest=b"K", data=b"packed", last_ref=20.0),
        PieceRow(digest=d, data=b"", size=3, last_ref=20.0, pack=b"K", pack_at=2),
    )
    # An older write arriving late moves nothing: the piece stays in its pack.
    await write(PieceRow(digest=d, data=b"own", size=3, last_ref=10.0))
    assert await piece() == (b"", 3, 20.0, b"K", 2)
    # A newer one takes over, data and place: the old pack may then go.
    await write(PieceRow(digest=d, data=b"own", size=3, last_ref=30.0))
    assert await piece() == (b"own", 3, 30.0, None, None)


async def test_pieces_stored_before_packs_existed_still_read(tmp_path: Path) -> None:
    conn = await open_db(db_path(tmp_path / "state"))
    try:
        before = [m for m in discover() if m.version < 4]
        await migrate(conn, before, now=1.0)
        body = conversation(40)
        recipe, parts = pieces.split(fields_of(body))
        await conn.execute(
            "INSERT INTO requests (id, ts, dialect, profile, status, stream, total_ms)"
            " VALUES ('old', 1.0, 'anthropic', 'default', 200, 0, 5.0)"
        )
        await conn.execute(
            "INSERT INTO replays (request_id, ts, dialect, profile, provider, stream,"
            " request_headers, request_body, body_format, response_body,"
            " response_truncated, size) VALUES"
            " ('old', 1.0, 'anthropic', 'default', 'local', 0, '{}', ?, ?, NULL, 0, 1)",
            (compress(recipe), BODY_PIECES),
        )
        await conn.executemany(
            "INSERT OR IGNORE INTO replay_pieces (digest, data, size, last_ref)"
            " VALUES (?, ?, ?, 1.0)",
            [(p.digest, compress(p.data), len(p.data)) for p in parts],
        )
        await conn.commit()
        assert len(await migrate(conn, discover(), now=2.0)) == len(discover()) - len(before)
        rec = await get_replay(conn, "old")
        assert rec is not None and json.loads(rec.request_body) == body
    finally:
        await conn.close()
