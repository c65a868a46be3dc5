"""Each attempt keeps the prompt estimated as its provider was sent it, and
start-up reads a refusal back with that estimate, not the request's (the
answering provider's, which may have been sent no tools); a refusal written
before attempts kept theirs is read back with the request's."""

from __future__ import annotations

from pathlib import Path

import aiosqlite

from coderouterd.routing.budget import BudgetBook
from coderouterd.routing.records import AttemptRecord, RequestSummary
from coderouterd.state import overflows, reads
from coderouterd.state.db import db_path, open_db
from coderouterd.state.migrate import discover, migrate
from coderouterd.state.request_recorder import RequestRecorder
from coderouterd.state.writer import Writer
from tests.integration.state.support_db import ManualClock

NOW = 1_750_000_000.0
BEFORE_THE_COLUMN = 11


async def record(conn: aiosqlite.Connection, summary: RequestSummary) -> None:
    clock = ManualClock(NOW)
    writer = Writer(conn, clock=clock)
    RequestRecorder(writer, BudgetBook(), clock, pricing=lambda _: None).request_finished(summary)
    await writer.close()


async def test_a_refusal_is_read_back_with_the_prompt_its_provider_was_sent(
    conn: aiosqlite.Connection,
) -> None:
    """`local` was sent the tools and refused; `notools` was sent none and answered."""
    refused = AttemptRecord(
        provider="local", outcome="too_long", reason="context_exceeded", status=400,
        prompt_tokens=1475, context_window=1310, model="local-model", prompt_estimate=1344,
    )  # fmt: skip
    answered = AttemptRecord(
        provider="notools", outcome="ok", status=200, model="notools-model", prompt_estimate=309
    )
    summary = RequestSummary(
        request_id="r1", dialect="anthropic", profile="default", requested_model="m",
        provider="notools", attempts=(refused, answered), status=200, stream=False,
        ttfb_ms=2.0, total_ms=3.0, usage=None, prompt_estimate=309,
    )  # fmt: skip
    await record(conn, summary)

    row = await reads.request(conn, "r1")
    assert row is not None and row.prompt_estimate == 309
    assert [a.prompt_estimate for a in row.attempts] == [1344, 309]
    assert await overflows.recent_overflows(conn, since=NOW - 600) == [
        overflows.Overflow(
            provider="local",
            ts=NOW,
            prompt_estimate=1344,
            prompt_tokens=1475,
            context_window=1310,
            model="local-model",
        )
    ]


async def test_a_refusal_written_before_attempts_kept_their_estimate_takes_the_requests(
    tmp_path: Path,
) -> None:
    path = db_path(tmp_path / "state")
    conn = await open_db(path)
    try:
        await migrate(conn, [m for m in discover() if m.version <= BEFORE_THE_COLUMN], now=1.0)
        await conn.execute(
            "INSERT INTO requests (id, ts, dialect, profile, provider, status, stream, total_ms,"
            " prompt_estimate) VALUES ('old', ?, 'anthropic', 'default', 'big', 200, 0, 1000.0,"
            " 50000)",
            (NOW - 100,),
        )
        await conn.executemany(
            "INSERT INTO attempts (request_id, seq, provider, outcome, reason, status,"
            " prompt_tokens, context_window) VALUES ('old', ?, ?, ?, ?, ?, ?, ?)",
            [
                (0, "local", "too_long", "context_exceeded", 400, 40960, 32768),
                (1, "big", "ok", None, 200, None, None),
            ],
        )
        await conn.commit()
        applied = await migrate(conn, discover(), now=2.0)
        assert [m.name for m in applied][:1] == ["attempt_prompt_estimate"]

        row = await reads.request(conn, "old")
        assert row is not None and [a.prompt_estimate for a in row.attempts] == [None, None]
        assert await overflows.recent_overflows(conn, since=NOW - 600) == [
            overflows.Overflow(
                provider="local",
                ts=NOW - 99,
                prompt_estimate=50_000,
                prompt_tokens=40_960,
                context_window=32_768,
            )
        ]
    finally:
        await conn.close()
