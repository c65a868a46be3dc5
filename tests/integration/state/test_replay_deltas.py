"""Replay bodies stored as what they add to the conversation's last record,
against a real SQLite file: read back byte for byte, chains bounded, and no
record left continuing one that is not stored."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from typing import Any

import aiosqlite
import msgspec
import openai
import pytest

from coderouterd.routing.budget import BudgetBook
from coderouterd.state import retention
from coderouterd.state.db import open_db
from coderouterd.state.deltas import MAX_DEPTH
from coderouterd.state.pieces import MissingPieceError
from coderouterd.state.recorder import PendingReplay, ReplayRecorder
from coderouterd.state.records import BODY_DELTA, BODY_PIECES, BODY_WHOLE, AuditEvent
from coderouterd.state.replay import get_replay
from coderouterd.state.request_recorder import RequestRecorder
from coderouterd.state.writer import Writer
from tests.conftest import StartDaemon, chain_yaml, provider_yaml
from tests.fakes.transcripts import anthropic_message, openai_completion
from tests.fakes.upstream import FakeUpstream, Reply
from tests.integration.state.support_db import ManualClock, count, enforce_retention, request_row
from tests.integration.state.test_recorder import summary
from tests.integration.state.test_replay_pieces import NOW, pending, send_session
from tests.unit.state.test_pieces import conversation

DAY = retention.SECONDS_PER_DAY
_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])


def compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def turn(rid: str, n: int | dict[str, Any], ts: float) -> PendingReplay:
    """Turn `n` of a conversation (or this body), as ingress hands it over:
    its compact bytes, and the conversation BodyMemo placed it in."""
    raw = compact(conversation(n) if isinstance(n, int) else n)
    p = pending(rid, {}, ts)
    return dataclasses.replace(p, request_fields=_fields.decode(raw), body=raw, conversation=1)


async def record_turns(
    conn: aiosqlite.Connection, writer: Writer, recorder: ReplayRecorder, turns: list[PendingReplay]
) -> None:
    for p in turns:
        writer.submit(request_row(p.request_id, ts=p.ts))
        recorder.submit(p)
        await recorder.drain()
    await writer.flush()


async def formats(conn: aiosqlite.Connection) -> dict[str, tuple[int, str | None]]:
    rows = await conn.execute_fetchall("SELECT request_id, body_format, base_id FROM replays")
    return {rid: (fmt, base) for rid, fmt, base in rows}


async def exact(conn: aiosqlite.Connection, p: PendingReplay) -> bool:
    rec = await get_replay(conn, p.request_id)
    return rec is not None and rec.request_body == p.body


def new_recorder(conn: aiosqlite.Connection, **kw: Any) -> tuple[Writer, ReplayRecorder]:
    writer = Writer(conn, clock=ManualClock(), **kw)
    return writer, ReplayRecorder(writer, max_record_bytes=1 << 22, gather_s=0)


async def test_a_conversation_is_stored_as_one_record_then_what_each_turn_adds(
    conn: aiosqlite.Connection,
) -> None:
    writer, recorder = new_recorder(conn)
    turns = [turn(f"r{n}", n, NOW + n) for n in range(20, 40, 2)]
    await record_turns(conn, writer, recorder, turns)
    stored = await formats(conn)
    assert stored["r20"] == (BODY_PIECES, None)
    for before, after in itertools.pairwise(turns):
        assert stored[after.request_id] == (BODY_DELTA, before.request_id)
    for p in turns:
        assert await exact(conn, p)
    # A delta holds the two new messages and the fields after them, not the history.
    sizes = await conn.execute_fetchall(
        "SELECT max(length(request_body)) FROM replays WHERE body_format = ?", (BODY_DELTA,)
    )
    assert sizes[0][0] < 1500
    await writer.close()


async def test_a_chain_ends_after_max_depth_deltas(conn: aiosqlite.Connection) -> None:
    writer, recorder = new_recorder(conn)
    turns = [turn(f"r{i}", 10 + i, NOW + i) for i in range(MAX_DEPTH + 3)]
    await record_turns(conn, writer, recorder, turns)
    stored = await formats(conn)
    roots = [p.request_id for p in turns if stored[p.request_id][0] == BODY_PIECES]
    assert roots == ["r0", f"r{MAX_DEPTH + 1}"]
    assert stored[f"r{MAX_DEPTH + 2}"] == (BODY_DELTA, f"r{MAX_DEPTH + 1}")
    for p in (turns[0], turns[MAX_DEPTH], turns[-1]):
        assert await exact(conn, p)
    await writer.close()


async def test_a_body_that_does_not_continue_the_last_is_stored_in_pieces(
    conn: aiosqlite.Connection,
) -> None:
    writer, recorder = new_recorder(conn)
    # A turn; the same conversation with its history rewritten (the bytes
    # part at its first message); a short one, sharing less than MIN_SHARED;
    # one placed in no conversation (a body that was not compact JSON).
    rewritten = conversation(20)
    rewritten["messages"].reverse()
    others = [turn("rewritten", rewritten, NOW + 1), turn("short", 2, NOW + 2)]
    alone = dataclasses.replace(turn("alone", 22, NOW + 3), body=None, conversation=None)
    await record_turns(conn, writer, recorder, [turn("first", 20, NOW), *others, alone])
    stored = await formats(conn)
    assert {rid: fmt for rid, (fmt, _) in stored.items()} == {
        "first": BODY_PIECES,
        "rewritten": BODY_PIECES,
        "short": BODY_PIECES,
        "alone": BODY_PIECES,
    }
    for p in others:
        assert await exact(conn, p)
    await writer.close()


async def test_a_record_the_writer_refused_is_continued_by_none(
    conn: aiosqlite.Connection,
) -> None:
    # Room for two records: the request rows of r1 and r2 and r1's record fill it.
    writer, recorder = new_recorder(conn, max_queue=3)
    await record_turns(conn, writer, recorder, [turn("r0", 20, NOW)])
    r1, r2, r3 = turn("r1", 22, NOW + 1), turn("r2", 24, NOW + 2), turn("r3", 26, NOW + 3)
    writer.submit(request_row("r1", ts=r1.ts))
    writer.submit(request_row("r2", ts=r2.ts))
    for p in (r1, r2):
        recorder.submit(p)
        await recorder.drain()
    assert recorder.dropped == 1
    await writer.flush()
    await record_turns(conn, writer, recorder, [r3])
    stored = await formats(conn)
    assert stored["r1"] == (BODY_DELTA, "r0")
    assert "r2" not in stored
    assert stored["r3"] == (BODY_PIECES, None)
    assert await exact(conn, r1) and await exact(conn, r3)
    await writer.close()


async def test_a_request_whose_row_was_refused_leaves_no_gap_in_the_chain(
    conn: aiosqlite.Connection,
) -> None:
    # A writer with no room at all refuses the request row; the recorder is told.
    full = Writer(conn, clock=ManualClock(), max_queue=0)
    told: list[str] = []
    requests = RequestRecorder(full, BudgetBook(), ManualClock(), lambda _: None,
                               on_unwritten=told.append)  # fmt: skip
    requests.request_finished(summary("r1"))
    assert told == ["r1"]

    writer, recorder = new_recorder(conn)
    r0, r1, r2 = turn("r0", 20, NOW), turn("r1", 22, NOW + 1), turn("r2", 24, NOW + 2)
    await record_turns(conn, writer, recorder, [r0])
    recorder.request_unwritten("r1")
    recorder.submit(r1)
    await recorder.drain()
    assert recorder.dropped == 1
    await record_turns(conn, writer, recorder, [r2])
    stored = await formats(conn)
    assert "r1" not in stored
    assert stored["r2"] == (BODY_DELTA, "r0")
    assert await exact(conn, r2)
    await writer.close()


async def test_retention_by_age_stores_whole_the_records_that_continue_deleted_ones(
    conn: aiosqlite.Connection,
) -> None:
    writer, recorder = new_recorder(conn)
    turns = [turn(f"r{i}", 20 + 2 * i, NOW + i * DAY) for i in range(6)]
    await record_turns(conn, writer, recorder, turns)
    await writer.close()
    # r0 and r1 are past a 3.5-day limit at NOW + 5 days.
    result = await enforce_retention(conn, now=NOW + 5 * DAY, max_age_days=3.5, max_bytes=1 << 30)
    assert result.deleted_replays == 2
    stored = await formats(conn)
    assert stored["r2"] == (BODY_WHOLE, None)
    assert stored["r3"] == (BODY_DELTA, "r2")
    for p in turns[2:]:
        assert await exact(conn, p)
    size = await conn.execute_fetchall(
        "SELECT size, length(request_body) + length(response_body) FROM replays"
        " WHERE request_id = 'r2'"
    )
    assert size[0][0] == size[0][1]


async def test_the_replay_cap_counts_what_storing_a_record_whole_adds(
    conn: aiosqlite.Connection,
) -> None:
    writer, recorder = new_recorder(conn)
    turns = [turn(f"r{i}", 20 + 2 * i, NOW + i) for i in range(8)]
    await record_turns(conn, writer, recorder, turns)
    await writer.close()
    sizes = [r[0] for r in await conn.execute_fetchall("SELECT size FROM replays ORDER BY ts")]
    # Without the first record only the deltas would be left, under this cap;
    # but the second, stored whole, grows by about half the first's size.
    cap = sum(sizes[1:]) + sizes[0] // 4
    await enforce_retention(
        conn, now=NOW + 10, max_age_days=3650, max_bytes=1 << 30, max_replay_bytes=cap
    )
    total = await conn.execute_fetchall("SELECT coalesce(sum(size), 0) FROM replays")
    assert total[0][0] <= cap
    oldest = await conn.execute_fetchall(
        "SELECT request_id, body_format FROM replays ORDER BY ts LIMIT 1"
    )
    assert oldest[0][0] != "r0" and oldest[0][1] == BODY_WHOLE
    for p in turns:
        if p.request_id in await formats(conn):
            assert await exact(conn, p)


async def test_a_delta_whose_base_is_gone_says_so(conn: aiosqlite.Connection) -> None:
    writer, recorder = new_recorder(conn)
    await record_turns(conn, writer, recorder, [turn("r0", 20, NOW), turn("r1", 22, NOW + 1)])
    await writer.close()
    # Deleted behind retention's back (by hand): reading says which record is missing.
    await conn.execute("DELETE FROM replays WHERE request_id = 'r0'")
    await conn.commit()
    with pytest.raises(MissingPieceError, match="record r0, whose body r1's continues"):
        await get_replay(conn, "r1")


async def test_after_a_retention_pass_the_next_record_is_stored_in_pieces(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url)))

    async def expire_all(n: int) -> None:
        if n == 22:
            # Everything recorded so far is past its age: a pass deletes it.
            await d.state.retention_tick(time.time() + 3651 * DAY)

    sent = await send_session(d, (20, 22, 24, 26), after_each=expire_all)
    conn = await open_db(d.state.path, readonly=True)
    try:
        stored = await formats(conn)
        kept = [rid for rid in sent if rid in stored]
        assert stored[kept[0]] == (BODY_PIECES, None)
        assert stored[kept[1]] == (BODY_DELTA, kept[0])
        for rid in kept:
            rec = await get_replay(conn, rid)
            assert rec is not None and json.loads(rec.request_body) == sent[rid]
    finally:
        await conn.close()


async def test_a_session_through_the_daemon_is_stored_as_deltas_and_replays_exactly(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=anthropic_message("ok"))
    d = await start_daemon(chain_yaml(provider_yaml("local", fake_upstream.url)))
    sent = await send_session(d, (20, 22, 24, 26))
    conn = await open_db(d.state.path, readonly=True)
    try:
        stored = await formats(conn)
        ids = list(sent)
        assert stored[ids[0]] == (BODY_PIECES, None)
        assert [stored[rid] for rid in ids[1:]] == [(BODY_DELTA, base) for base in ids[:-1]]
        for rid, body in sent.items():
            rec = await get_replay(conn, rid)
            assert rec is not None and json.loads(rec.request_body) == body
        assert await count(conn, "replays") == len(sent)
    finally:
        await conn.close()


async def test_a_delta_on_a_record_lost_with_its_batch_is_counted_not_stored(
    conn: aiosqlite.Connection,
) -> None:
    writer, recorder = new_recorder(conn)
    r0, r1, r2 = turn("r0", 20, NOW), turn("r1", 22, NOW + 1), turn("r2", 24, NOW + 2)
    await record_turns(conn, writer, recorder, [r0])
    # r1's batch fails whole: its audit event takes a place in the chain that
    # another writer took first (an audit row is never left out alone).
    await conn.execute(
        "INSERT INTO audit (seq, ts, event, fields, prev_hash, hash)"
        " VALUES (1, 1.0, 'x', '{}', '', '')"
    )
    await conn.commit()
    writer.submit(AuditEvent(ts=NOW + 1, event="lost", fields={}))
    await record_turns(conn, writer, recorder, [r1])
    assert writer.stats().failed_rows == 3
    # r2 was built as a delta on r1 before anyone could know.
    await record_turns(conn, writer, recorder, [r2])
    assert writer.stats().replays_orphaned == 1
    assert set(await formats(conn)) == {"r0"}
    await writer.close()


async def test_an_openai_session_is_stored_as_deltas_and_replays_exactly(
    start_daemon: StartDaemon, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.default = Reply(json=openai_completion("ok"))
    local = provider_yaml("local", fake_upstream.url + "/v1", kind="openai_compat")
    d = await start_daemon(chain_yaml(local))
    messages: list[dict[str, Any]] = [{"role": "system", "content": "Answer tersely. " * 400}]
    sent: dict[str, list[dict[str, Any]]] = {}
    async with openai.AsyncOpenAI(base_url=f"{d.url}/v1", api_key="k", max_retries=0) as client:
        for n in range(3):
            messages = [*messages, {"role": "user", "content": f"question {n}"}]
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-x", messages=messages
            )
            sent[raw.headers["x-request-id"]] = messages
            messages = [*messages, {"role": "assistant", "content": "ok"}]
    await d.state.replays.drain()
    await d.state.writer.flush()
    conn = await open_db(d.state.path, readonly=True)
    try:
        stored = await formats(conn)
        ids = list(sent)
        assert [stored[rid] for rid in ids] == [
            (BODY_PIECES, None),
            (BODY_DELTA, ids[0]),
            (BODY_DELTA, ids[1]),
        ]
        for rid, history in sent.items():
            rec = await get_replay(conn, rid)
            assert rec is not None and rec.dialect == "openai"
            assert json.loads(rec.request_body) == {"messages": history, "model": "gpt-x"}
    finally:
        await conn.close()
