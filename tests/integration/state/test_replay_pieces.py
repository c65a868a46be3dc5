"""Replay bodies stored as shared pieces, against a real SQLite file: written once,
read back whole, kept while named, deleted once no record can name them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiosqlite
import anthropic
import msgspec
import pytest

from coderouterd.state import pieces
from coderouterd.state.db import db_path, open_db
from coderouterd.state.migrate import discover, migrate
from coderouterd.state.pieces import PIECE_REFRESH_S
from coderouterd.state.recorder import BEHIND, PendingReplay, ReplayRecorder
from coderouterd.state.replay import compress, get_replay
from coderouterd.state.writer import Writer
from tests.conftest import RunningDaemon, StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.state.support_db import ManualClock, count, enforce_retention, request_row
from tests.unit.state.test_pieces import conversation, fields_of

_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
NOW = 1_750_000_000.0


def pending(rid: str, body: dict[str, Any], ts: float) -> PendingReplay:
    return PendingReplay(
        request_id=rid,
        ts=ts,
        dialect="anthropic",
        profile="default",
        provider="local",
        stream=False,
        headers={"anthropic-version": "2023-06-01", "x-api-key": "sk-never-stored"},
        request_fields=_fields.decode(json.dumps(body).encode()),
        response_body=b'{"type":"message","content":[]}',
        response_truncated=False,
    )


async def record(
    conn: aiosqlite.Connection, turns: list[tuple[str, dict[str, Any], float]], **kw: Any
) -> ReplayRecorder:
    writer = Writer(conn, clock=ManualClock())
    recorder = ReplayRecorder(writer, max_record_bytes=kw.pop("max_record_bytes", 1 << 22), **kw)
    for rid, body, ts in turns:
        writer.submit(request_row(rid, ts=ts))
        recorder.submit(pending(rid, body, ts))
        # One record at a time, as a steady trickle of requests arrives.
        await recorder.drain()
    await writer.close()
    return recorder


def pieces_of(body: dict[str, Any]) -> list[bytes]:
    return [p.digest for p in pieces.split(fields_of(body))[1]]


async def body_of(conn: aiosqlite.Connection, rid: str) -> dict[str, Any]:
    rec = await get_replay(conn, rid)
    assert rec is not None
    return json.loads(rec.request_body)


async def test_a_growing_conversation_stores_each_piece_once(conn: aiosqlite.Connection) -> None:
    # Each turn adds an assistant answer and a user message, as an agent's do.
    turns = [(f"r{n}", conversation(n), NOW + n) for n in range(40, 100, 2)]
    await record(conn, turns)
    for rid, body, _ in turns:
        assert await body_of(conn, rid) == body
    # One copy of system and tools, and of each run of the history, plus
    # the open run rewritten as it grows.
    assert await count(conn, "replay_pieces") < 2 + 100
    stored = sum(r[0] for r in await conn.execute_fetchall("SELECT size FROM replays"))
    whole = sum(len(compress(json.dumps(body).encode())) for _, body, _ in turns)
    assert stored * 3 < whole, (stored, whole)


async def test_a_record_over_the_cap_leaves_its_pieces_to_the_next(
    conn: aiosqlite.Connection,
) -> None:
    body = conversation(40)
    await record(conn, [("big", body, NOW), ("next", body, NOW + 1)], max_record_bytes=4000)
    assert await get_replay(conn, "big") is None
    # The first was over the cap because of its pieces; the second had to write them.
    assert await get_replay(conn, "next") is None


async def test_pieces_named_by_kept_records_survive_retention(conn: aiosqlite.Connection) -> None:
    old, new = conversation(30), conversation(36)
    await record(conn, [("old", old, NOW), ("new", new, NOW + 10)])
    before = await count(conn, "replay_pieces")
    await conn.execute("DELETE FROM replays WHERE request_id = 'old'")
    await conn.commit()
    later = NOW + 10 * PIECE_REFRESH_S
    await enforce_retention(conn, now=later, max_age_days=3650, max_bytes=1 << 30)
    # "new" names everything "old" did but the last open run.
    assert before - 1 <= await count(conn, "replay_pieces") <= before
    assert await body_of(conn, "new") == new


async def test_pieces_go_once_no_record_can_name_them(conn: aiosqlite.Connection) -> None:
    await record(conn, [("a", conversation(30), NOW)])
    assert await count(conn, "replay_pieces") > 0
    # Just deleted: a record still queued could name them, so they stay a while.
    await conn.execute("DELETE FROM replays")
    await conn.commit()
    await enforce_retention(conn, now=NOW + 60, max_age_days=3650, max_bytes=1 << 30)
    assert await count(conn, "replay_pieces") > 0
    result = await enforce_retention(
        conn, now=NOW + 2 * PIECE_REFRESH_S + 1, max_age_days=3650, max_bytes=1 << 30
    )
    assert await count(conn, "replay_pieces") == 0
    assert result.deleted_pieces > 0


async def test_a_piece_named_again_after_the_refresh_time_is_rewritten(
    conn: aiosqlite.Connection,
) -> None:
    body = conversation(30)
    recorder = await record(conn, [("a", body, NOW)])
    await conn.execute("DELETE FROM replay_pieces")
    await conn.commit()
    # Within the refresh time the recorder trusts that its pieces are stored ...
    writer = Writer(conn, clock=ManualClock())
    recorder._writer = writer  # the same recorder, writing to a new writer
    for rid, ts in (("b", NOW + 5), ("c", NOW + PIECE_REFRESH_S + 5)):
        writer.submit(request_row(rid, ts=ts))
        recorder.submit(pending(rid, body, ts))
        await recorder.drain()
    await writer.close()
    rows = await conn.execute_fetchall("SELECT DISTINCT last_ref FROM replay_pieces")
    # ... after it, "c" writes them again, data included, with its own time.
    assert [r[0] for r in rows] == [NOW + PIECE_REFRESH_S + 5]
    assert await body_of(conn, "c") == body


async def test_a_record_from_before_the_pieces_migration_still_reads(tmp_path: Path) -> None:
    path = db_path(tmp_path / "state")
    conn = await open_db(path)
    try:
        first, *rest = discover()
        await migrate(conn, [first], now=1.0)
        body = json.dumps(conversation(10)).encode()
        await conn.execute(
            "INSERT INTO requests (id, ts, dialect, profile, status, stream, total_ms)"
            " VALUES ('old', 1.0, 'anthropic', 'default', 200, 0, 5.0)"
        )
        await conn.execute(
            "INSERT INTO replays (request_id, ts, dialect, profile, provider, stream,"
            " request_headers, request_body, response_body, response_truncated, size)"
            " VALUES ('old', 1.0, 'anthropic', 'default', 'local', 0, '{}', ?, NULL, 0, 1)",
            (compress(body),),
        )
        await conn.commit()
        assert await migrate(conn, [first, *rest], now=2.0) == rest
        rec = await get_replay(conn, "old")
        assert rec is not None and rec.request_body == body
    finally:
        await conn.close()


async def send_session(
    d: RunningDaemon,
    turns: Iterable[int],
    after_each: Callable[[int], Awaitable[None]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Send these turns of conversation() with the Anthropic SDK; return the
    bodies sent by request id once their records are written. `after_each`
    runs after each turn's record is."""
    sent: dict[str, dict[str, Any]] = {}
    async with anthropic.AsyncAnthropic(base_url=d.url, api_key="k", max_retries=0) as client:
        for n in turns:
            body = {k: v for k, v in conversation(n).items() if k != "stream"}
            raw = await client.messages.with_raw_response.create(**body)
            sent[raw.headers["x-request-id"]] = body
            if after_each is not None:
                await d.state.replays.drain()
                await d.state.writer.flush()
                await after_each(n)
    await d.state.replays.drain()
    await d.state.writer.flush()
    return sent


async def test_a_session_through_the_daemon_replays_exactly_what_was_sent(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url)))
    sent = await send_session(d, (20, 22, 24))
    conn = await open_db(d.state.path, readonly=True)
    try:
        for rid, body in sent.items():
            assert await body_of(conn, rid) == body
        pieces_written = await count(conn, "replay_pieces")
    finally:
        await conn.close()
    # The later turns wrote only their new runs, not system, tools and history again.
    assert pieces_written < len(pieces_of(conversation(24))) + 6


async def test_the_recorder_keeps_up_with_a_loop_that_finishes_several_requests_per_turn(
    conn: aiosqlite.Connection,
) -> None:
    # A busy daemon finishes a few requests in every turn of the event loop;
    # records built one per turn would fall behind and overflow the queue.
    writer = Writer(conn, clock=ManualClock())
    recorder = ReplayRecorder(writer, max_record_bytes=1 << 22, max_queue=64, gather_s=0)
    body = conversation(12)
    # The conversation's pieces are written first, as in a session under way:
    # from then on each record is built on the loop, with no thread hop.
    writer.submit(request_row("first", ts=NOW))
    recorder.submit(pending("first", body, NOW))
    await recorder.drain()
    task = asyncio.create_task(recorder.run())
    for turn in range(400):
        for i in range(3):
            rid = f"r{turn}-{i}"
            writer.submit(request_row(rid, ts=NOW + turn))
            recorder.submit(pending(rid, body, NOW + turn))
        await asyncio.sleep(0)
    recorder.stop()
    await task
    await writer.close()
    assert recorder.dropped == 0
    assert await count(conn, "replays") == 1201


async def test_a_recorder_behind_builds_its_oldest_records_on_submit_and_loses_none(
    conn: aiosqlite.Connection,
) -> None:
    writer = Writer(conn, clock=ManualClock())
    body = conversation(12)
    size = pending("x", body, NOW).size
    recorder = ReplayRecorder(
        writer, max_record_bytes=1 << 22, max_queue=64, max_queue_bytes=3 * size, gather_s=0
    )
    for i in range(5):
        writer.submit(request_row(f"r{i}", ts=NOW))
        assert recorder.submit(pending(f"r{i}", body, NOW))
    # Three bodies fit the cap: the two oldest were built to make room.
    assert recorder.built_inline == 2
    await writer.flush()
    assert await count(conn, "replays") == 2
    await recorder.drain()
    await writer.close()
    assert recorder.dropped == 0
    assert await count(conn, "replays") == 5
    # A record larger than the cap alone still waits: the cap bounds a backlog.
    big = ReplayRecorder(writer, max_record_bytes=1 << 22, max_queue_bytes=1, gather_s=0)
    big.submit(pending("big", body, NOW))
    assert big.built_inline == 0
    big.submit(pending("big2", body, NOW))
    assert big.built_inline == 1


async def test_a_recorder_behind_stores_what_it_writes_as_it_is(
    conn: aiosqlite.Connection,
) -> None:
    writer = Writer(conn, clock=ManualClock())
    recorder = ReplayRecorder(writer, max_record_bytes=1 << 22, max_queue=BEHIND + 4, gather_s=0)
    answer = json.dumps({"type": "message", "content": [{"type": "text", "text": "ok " * 600}]})
    # Another conversation's first turn: every piece of it new, several of them.
    other = conversation(30)
    other["messages"] = [
        {**m, "content": [{"type": "text", "text": "other " + m["content"][0]["text"]}]}
        for m in other["messages"]
    ]
    bodies = {"steady": conversation(20)}

    def turn(rid: str, n: int, body: dict[str, Any] | None = None) -> PendingReplay:
        writer.submit(request_row(rid, ts=NOW + n))
        bodies[rid] = body or conversation(n)
        return dataclasses.replace(
            pending(rid, bodies[rid], NOW + n), response_body=answer.encode()
        )

    recorder.submit(turn("steady", 20))
    await recorder.drain()
    # A burst: more records waiting than BEHIND, then more than the queue holds.
    burst = [f"burst{n}" for n in range(BEHIND + 8)]
    for n, rid in enumerate(burst):
        recorder.submit(turn(rid, 21 + n, other if n == BEHIND // 2 else None))
    assert recorder.built_inline == 4
    await recorder.drain()
    await writer.close()
    blobs = {
        rid: (req[:1], resp[:1])
        for rid, req, resp in await (
            await conn.execute("SELECT request_id, request_body, response_body FROM replays")
        ).fetchall()
    }
    assert blobs.pop("steady") == (b"x", b"x")  # zlib's first byte, at level 1
    assert set(blobs.values()) == {(b"\x00", b"\x00")}
    # Packs are compressed, the burst's among them; the burst's own pieces are not.
    packs = await conn.execute_fetchall("SELECT last_ref, substr(data, 1, 1) FROM replay_packs")
    assert {first for _, first in packs} == {b"x"}
    assert {NOW + 20, NOW + 21 + BEHIND // 2} <= {ts for ts, _ in packs}
    alone = await conn.execute_fetchall(
        "SELECT DISTINCT substr(data, 1, 1) FROM replay_pieces WHERE size > 1024 AND pack IS NULL"
    )
    assert [r[0] for r in alone] == [b"\x00"]
    for rid, body in bodies.items():
        rec = await get_replay(conn, rid)
        assert rec is not None and rec.response_body == answer.encode()
        assert json.loads(rec.request_body) == body


async def test_a_drain_cancelled_mid_build_leaves_the_record_for_the_next(
    conn: aiosqlite.Connection,
) -> None:
    writer = Writer(conn, clock=ManualClock())
    recorder = ReplayRecorder(writer, max_record_bytes=1 << 22, gather_s=0)
    # A first record of a conversation: its pieces are compressed on a thread.
    writer.submit(request_row("r0", ts=NOW))
    recorder.submit(pending("r0", conversation(40), NOW))
    task = asyncio.create_task(recorder.drain())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await writer.flush()
    assert await count(conn, "replays") == 0
    await recorder.drain()
    await writer.close()
    assert await count(conn, "replays") == 1


async def test_a_drain_waits_for_one_still_compressing_its_record(
    conn: aiosqlite.Connection,
) -> None:
    """A record large enough to compress in a thread is off the queue while
    it compresses: a second drain (one that wants everything written now,
    as shutdown and tests do) waits for it instead of finding nothing."""
    writer = Writer(conn, clock=ManualClock())
    recorder = ReplayRecorder(writer, max_record_bytes=1 << 22)
    body = {"model": "m", "messages": [{"role": "user", "content": os.urandom(60_000).hex()}]}
    writer.submit(request_row("big", ts=NOW))
    recorder.submit(pending("big", body, NOW))
    first = asyncio.create_task(recorder.drain())
    await asyncio.sleep(0)  # it has taken the record and awaits its compression
    await recorder.drain()
    assert first.done()
    await writer.flush()
    assert await count(conn, "replays") == 1
    await writer.close()
