"""Each attempt keeps the model it was sent to, and the start-up reads of
pace and drift take only the attempts of a provider's configured model;
rows written before the column was there count for any model."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from coderouterd.routing.budget import BudgetBook
from coderouterd.routing.records import AttemptRecord, RequestSummary
from coderouterd.state import reads
from coderouterd.state.db import db_path, open_db
from coderouterd.state.migrate import discover, migrate
from coderouterd.state.request_recorder import RequestRecorder
from coderouterd.state.writer import Writer
from coderouterd.wire.usage import Usage
from tests.integration.state.support_db import ManualClock

NOW = 1_750_000_000.0
BEFORE_THE_COLUMN = 10


async def schema_10_database(tmp_path: Path) -> Path:
    """A database as the daemon left it before attempts kept their model:
    a streamed answer of `local`, and a request `local` failed that `cloud`
    answered."""
    path = db_path(tmp_path / "state")
    conn = await open_db(path)
    try:
        older = [m for m in discover() if m.version <= BEFORE_THE_COLUMN]
        assert [m.version for m in older] == list(range(1, BEFORE_THE_COLUMN + 1))
        await migrate(conn, older, now=1.0)
        for rid, provider, stream in (("old-stream", "local", 1), ("old-failed", "cloud", 0)):
            await conn.execute(
                "INSERT INTO requests (id, ts, dialect, profile, provider, status, stream,"
                " total_ms, output_tokens, stop_reason, tool_use, tools_offered)"
                " VALUES (?, ?, 'anthropic', 'main', ?, 200, ?, 1000.0, 100, 'end_turn', 0, 0)",
                (rid, NOW - 100, provider, stream),
            )
        await conn.executemany(
            "INSERT INTO attempts (request_id, seq, provider, outcome, reason, ttfb_ms, latency_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                ("old-stream", 0, "local", "ok", None, 10.0, 1010.0),
                ("old-failed", 0, "local", "failed", "http_500", None, 5.0),
                ("old-failed", 1, "cloud", "ok", None, 10.0, 900.0),
            ],
        )
        await conn.commit()
    finally:
        await conn.close()
    return path


def summary(rid: str, *attempts: AttemptRecord) -> RequestSummary:
    answered = attempts[-1]
    return RequestSummary(
        request_id=rid,
        dialect="anthropic",
        profile="main",
        requested_model="m",
        provider=answered.provider,
        attempts=attempts,
        status=200,
        stream=True,
        ttfb_ms=10.0,
        total_ms=1000.0,
        usage=Usage(input_tokens=10, output_tokens=100),
        stop_reason="end_turn",
        tool_use=False,
    )


def ok(provider: str, model: str) -> AttemptRecord:
    return AttemptRecord(
        provider=provider, outcome="ok", status=200, ttfb_ms=10.0, latency_ms=1010.0, model=model
    )


async def record(conn: aiosqlite.Connection, *summaries: RequestSummary) -> None:
    clock = ManualClock(NOW)
    writer = Writer(conn, clock=clock)
    recorder = RequestRecorder(writer, BudgetBook(), clock, pricing=lambda _: None)
    for s in summaries:
        recorder.request_finished(s)
    await writer.close()


async def test_an_older_database_keeps_its_attempts_with_no_model_and_they_count_for_any(
    tmp_path: Path,
) -> None:
    path = await schema_10_database(tmp_path)
    conn = await open_db(path)
    try:
        applied = await migrate(conn, discover(), now=2.0)
        assert (applied[0].version, applied[0].name) == (11, "attempt_model")
        columns = [r[1] for r in await conn.execute_fetchall("PRAGMA table_info(attempts)")]
        assert "model" in columns
        old = await reads.request(conn, "old-failed")
        assert old is not None and [a.model for a in old.attempts] == [None, None]

        # An upgrade forgets nothing: whatever the model, the old rows are read back.
        streams = await reads.recent_streams(conn, "local", 10, now=NOW, model="qwen-32b")
        assert [(s.ttfb_ms, s.latency_ms) for s in streams] == [(10.0, 1010.0)]
        answers = await reads.recent_answers(conn, "local", 10, now=NOW, model="qwen-32b")
        assert sorted((a.answered, a.failures) for a in answers) == [(False, 1), (True, 0)]

        # A row written after the upgrade keeps its model; another model's is left out.
        await record(conn, summary("new-7b", ok("local", "qwen-7b")))
        new = await reads.request(conn, "new-7b")
        assert new is not None and [a.model for a in new.attempts] == ["qwen-7b"]
        assert len(await reads.recent_streams(conn, "local", 10, now=NOW, model="qwen-7b")) == 2
        assert len(await reads.recent_streams(conn, "local", 10, now=NOW, model="qwen-32b")) == 1
    finally:
        await conn.close()


async def test_pace_and_drift_read_back_only_the_attempts_sent_to_the_model_given(
    conn: aiosqlite.Connection,
) -> None:
    failed = AttemptRecord(provider="local", outcome="failed", reason="http_500", model="qwen-7b")
    skipped = AttemptRecord(provider="spare", outcome="skipped", reason="excluded")
    await record(
        conn,
        summary("small", skipped, ok("local", "qwen-7b")),
        summary("fell-over", failed, ok("cloud", "cloud-model")),
        summary("big", ok("local", "qwen-32b")),
    )
    row = await reads.request(conn, "small")
    assert row is not None and [a.model for a in row.attempts] == [None, "qwen-7b"]

    async def streamed(provider: str, model: str) -> int:
        return len(await reads.recent_streams(conn, provider, 10, now=NOW, model=model))

    async def answers(provider: str, model: str) -> list[tuple[bool, int]]:
        found = await reads.recent_answers(conn, provider, 10, now=NOW, model=model)
        return sorted((a.answered, a.failures) for a in found)

    assert (await streamed("local", "qwen-32b"), await streamed("local", "qwen-7b")) == (1, 1)
    assert await streamed("local", "llama-70b") == 0
    assert await answers("local", "qwen-32b") == [(True, 0)]
    # The 7b's failed attempt counts for the 7b, in a request another provider answered.
    assert await answers("local", "qwen-7b") == [(False, 1), (True, 0)]
    assert await answers("local", "llama-70b") == []
    assert await answers("cloud", "cloud-model") == [(True, 0)]
    assert await answers("cloud", "cloud-model-2") == []
