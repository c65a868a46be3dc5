"""Reading replay records back from a real SQLite file."""

from __future__ import annotations

import json

import aiosqlite

from coderouterd.state.assemble import assemble
from coderouterd.state.replay import (
    ReplaySummary,
    ResponseCapture,
    compress,
    get_replay,
    list_replays,
    redact_headers,
)


async def store(
    db: aiosqlite.Connection,
    request_id: str,
    *,
    ts: float,
    provider: str | None = "anthropic",
    response: bytes | None = b"",
    truncated: bool = False,
) -> None:
    """Insert a row the way the writer does (the writer itself is not under test)."""
    headers = redact_headers({"anthropic-version": "2023-06-01", "x-api-key": "sk-secret"})
    body = json.dumps({"model": "claude", "messages": [], "stream": True}).encode()
    await db.execute(
        "INSERT INTO requests (id, ts, dialect, profile, status, stream, total_ms)"
        " VALUES (?, ?, 'anthropic', 'default', 200, 1, 10.0)",
        (request_id, ts),
    )
    await db.execute(
        "INSERT INTO replays (request_id, ts, dialect, profile, provider, stream,"
        " request_headers, request_body, response_body, response_truncated, size)"
        " VALUES (?, ?, 'anthropic', 'default', ?, 1, ?, ?, ?, ?, ?)",
        (
            request_id,
            ts,
            provider,
            json.dumps(headers),
            compress(body),
            None if response is None else compress(response),
            int(truncated),
            len(body) + len(response or b""),
        ),
    )
    await db.commit()


async def test_a_stored_replay_reads_back_decompressed(conn: aiosqlite.Connection) -> None:
    stream = (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"hello"}}\n\n'
    )
    capture = ResponseCapture(40)
    capture.add(stream)
    await store(conn, "req_1", ts=100.0, response=capture.data, truncated=capture.truncated)

    record = await get_replay(conn, "req_1")

    assert record is not None
    assert record.request_headers == {"anthropic-version": "2023-06-01"}
    assert json.loads(record.request_body)["model"] == "claude"
    assert record.response_body == stream[:40]
    assert record.response_truncated
    assert record.stream
    assert record.provider == "anthropic"
    # A capture cut inside the first frame assembles to nothing, without error.
    assert assemble(record.dialect, record.stream, record.response_body).text == ""


async def test_a_replay_without_a_response(conn: aiosqlite.Connection) -> None:
    await store(conn, "req_2", ts=100.0, response=None, provider=None)
    record = await get_replay(conn, "req_2")
    assert record is not None
    assert record.response_body is None
    assert record.provider is None


async def test_an_unknown_request_has_no_replay(conn: aiosqlite.Connection) -> None:
    assert await get_replay(conn, "nope") is None


async def test_listing_is_newest_first_and_filters(conn: aiosqlite.Connection) -> None:
    for i, provider in enumerate(["anthropic", "deepseek", "anthropic", "ollama"]):
        await store(conn, f"req_{i}", ts=100.0 + i, provider=provider)

    everything = await list_replays(conn, since=None, provider=None, limit=10)
    assert [r.request_id for r in everything] == ["req_3", "req_2", "req_1", "req_0"]
    assert isinstance(everything[0], ReplaySummary)
    assert everything[0].size > 0

    anthropic = await list_replays(conn, since=None, provider="anthropic", limit=10)
    assert [r.request_id for r in anthropic] == ["req_2", "req_0"]
    recent = await list_replays(conn, since=101.0, provider=None, limit=2)
    assert [r.request_id for r in recent] == ["req_3", "req_2"]
    both = await list_replays(conn, since=101.0, provider="anthropic", limit=10)
    assert [r.request_id for r in both] == ["req_2"]
