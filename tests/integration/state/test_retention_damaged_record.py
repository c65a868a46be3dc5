"""A record retention cannot read does not stop retention: the rows past
`retention_days` still go, and the unreadable record is counted once."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest
from structlog.testing import capture_logs

from coderouterd.config.model import StateConfig
from coderouterd.state.records import BODY_DELTA, BODY_PIECES, ReplayRow
from coderouterd.state.replay import compress
from coderouterd.state.service import StateService
from coderouterd.state.writer import Writer
from coderouterd.telemetry.logging import get_logger
from tests.integration.state.support_db import ManualClock, count, enforce_retention, request_row

DAY = 86_400.0
NOW = 1_750_000_000.0
OLD = NOW - 40 * DAY
RECENT = NOW - DAY
EXPIRED = 50


def replay(rid: str, ts: float, body: bytes, **kw: object) -> ReplayRow:
    return ReplayRow(
        request_id=rid, ts=ts, dialect="anthropic", profile="default", provider="local",
        stream=True, request_headers="{}", request_body=body, response_body=None,
        response_truncated=False, size=len(body), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


async def store_conversation(conn: aiosqlite.Connection) -> None:
    writer = Writer(conn, clock=ManualClock(NOW))
    submit_conversation(writer)
    await writer.close()


def submit_conversation(writer: Writer) -> None:
    """An expired record `base`, a kept one `cont` continuing it, and
    EXPIRED more expired requests."""
    writer.submit(request_row("base", ts=OLD))
    writer.submit(replay("base", OLD, compress(b'{"messages":[1,2,3]}')))
    for i in range(EXPIRED):
        writer.submit(request_row(f"expired{i:02d}", ts=OLD + 1 + i))
    writer.submit(request_row("cont", ts=RECENT))
    writer.submit(
        replay(
            "cont", RECENT, compress(b",4]}"), body_format=BODY_DELTA, base_id="base", base_len=18
        )
    )


# Each a damage that makes `cont` unreadable: (record, body_format, blob).
DAMAGES = {
    # A flipped page: not zlib any more.
    "continuing record not zlib": ("cont", BODY_DELTA, b"\x78\x9c\xde\xad\xbe\xef"),
    "base record not zlib": ("base", 0, b"\x78\x9c\xde\xad\xbe\xef"),
    "base recipe not JSON": ("base", BODY_PIECES, compress(b"{not json")),
    "base recipe names a digest not hex": (
        "base",
        BODY_PIECES,
        compress(b'{"fields":{"messages":null},"pieces":{"messages":["zz"]}}'),
    ),
    "base recipe names a piece not stored": (
        "base",
        BODY_PIECES,
        compress(b'{"fields":{"messages":null},"pieces":{"messages":["ab"]}}'),
    ),
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
async def test_an_unreadable_continuing_record_does_not_stop_the_age_limit(
    conn: aiosqlite.Connection, damage: tuple[str, int, bytes]
) -> None:
    await store_conversation(conn)
    rid, body_format, blob = damage
    await conn.execute(
        "UPDATE replays SET body_format = ?, request_body = ? WHERE request_id = ?",
        (body_format, blob, rid),
    )
    result = await enforce_retention(conn, now=NOW, max_age_days=30, max_bytes=1 << 40)
    assert (result.deleted_requests, result.unreadable_replays) == (EXPIRED + 1, 1)
    assert await count(conn, "requests") == 1
    # Left as it was; the next pass has no base of it to delete, nor counts it again.
    rows = await conn.execute_fetchall("SELECT request_id, base_id FROM replays")
    assert list(rows) == [("cont", "base")]
    again = await enforce_retention(conn, now=NOW + DAY, max_age_days=30, max_bytes=1 << 40)
    assert again.unreadable_replays == 0


async def test_an_unreadable_record_does_not_stop_the_size_cap(
    conn: aiosqlite.Connection,
) -> None:
    await store_conversation(conn)
    await conn.execute(
        "UPDATE replays SET request_body = X'789cdeadbeef' WHERE request_id = 'cont'"
    )
    # Replays over their cap: `base`, the oldest, goes first.
    result = await enforce_retention(
        conn, now=NOW, max_age_days=3650, max_bytes=1 << 40, max_replay_bytes=10
    )
    assert (result.deleted_replays, result.unreadable_replays) == (1, 1)
    rows = await conn.execute_fetchall("SELECT request_id FROM replays")
    assert list(rows) == [("cont",)]
    assert await count(conn, "requests") == EXPIRED + 2


async def test_the_pass_that_meets_an_unreadable_record_logs_it_in_its_one_line(
    tmp_path: Path,
) -> None:
    # The pass at start-up, a month back, keeps everything.
    clock = ManualClock(NOW - 30 * DAY)
    state = await StateService.open(
        tmp_path / "state", StateConfig(), clock=clock, log=get_logger()
    )
    try:
        submit_conversation(state.writer)
        await state.writer.flush()
        await state.writer.maintain(
            lambda c: c.execute(
                "UPDATE replays SET request_body = X'789cdeadbeef' WHERE request_id = 'cont'"
            )
        )
        with capture_logs() as logs:
            await state.retention_tick(NOW)
        lines = [e for e in logs if e["event"].startswith("state.retention")]
        assert [(e["event"], e.get("unreadable_replays")) for e in lines] == [
            ("state.retention", 1)
        ]
        assert lines[0]["deleted_requests"] == EXPIRED + 1
    finally:
        await state.close()
