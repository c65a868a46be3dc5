"""Typed reads on a read-only connection see what the writer committed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import msgspec
import pytest_asyncio

from coderouterd.state import overflows, reads
from coderouterd.state.db import open_db
from coderouterd.state.records import (
    AttemptRow,
    AuditEvent,
    BudgetIncrement,
    ExclusionCleared,
    ExclusionSet,
    FinishedRequest,
    RequestRow,
)
from coderouterd.state.writer import Writer
from coderouterd.telemetry import events
from tests.integration.state.support_db import ManualClock, request_row


@pytest_asyncio.fixture
async def reader(db_file: Path) -> AsyncIterator[aiosqlite.Connection]:
    c = await open_db(db_file, readonly=True)
    yield c
    await c.close()


async def write(conn: aiosqlite.Connection, *records: object) -> None:
    writer = Writer(conn, clock=ManualClock())
    for r in records:
        assert writer.submit(r)  # type: ignore[arg-type]
    await writer.close()


async def test_recent_requests_newest_first_with_attempts_and_filters(
    conn: aiosqlite.Connection, reader: aiosqlite.Connection
) -> None:
    rows = [
        request_row("a", ts=100.0, provider="ollama", attempts=2),
        request_row("b", ts=200.0, provider="nim", attempts=0),
        request_row("c", ts=300.0, provider="ollama", attempts=3, cost_usd=0.5,
                    usage_estimated=True, client_disconnected=True),
    ]  # fmt: skip
    await write(conn, *rows)
    got = await reads.recent_requests(reader, since=None, provider=None, limit=10)
    assert got == [rows[2], rows[1], rows[0]]
    assert [len(r.attempts) for r in got] == [3, 0, 2]
    assert await reads.recent_requests(reader, since=150.0, provider="ollama", limit=10) == [
        rows[2]
    ]
    limited = await reads.recent_requests(reader, since=None, provider=None, limit=2)
    assert [r.id for r in limited] == ["c", "b"]


async def test_one_request_by_id(conn: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
    row = RequestRow(
        id="x", ts=1.0, dialect="openai", profile="p", requested_model=None, provider=None,
        status=503, stream=False, ttfb_ms=None, total_ms=3.0, error="no provider",
        attempts=(AttemptRow(seq=0, provider="a", outcome="skipped", reason="excluded",
                             detail="oom"),),
    )  # fmt: skip
    await write(conn, row)
    assert await reads.request(reader, "x") == row
    assert await reads.request(reader, "missing") is None


def refused(
    rid: str, ts: float, provider: str, *, estimate: int | None = 50_000, **said: int
) -> RequestRow:
    """A request `provider` refused as too long (with the counts it `said`); big answered."""
    too_long = AttemptRow(seq=0, provider=provider, outcome="too_long",
                          reason="context_exceeded", status=400, **said)  # fmt: skip
    row = request_row(rid, ts=ts, provider="big", prompt_estimate=estimate)
    return msgspec.structs.replace(
        row, attempts=(too_long, AttemptRow(seq=1, provider="big", outcome="ok"))
    )


async def test_each_providers_latest_refusal_as_too_long_by_when_it_came(
    conn: aiosqlite.Connection, reader: aiosqlite.Connection
) -> None:
    rows = [
        refused("old", 100.0, "local", prompt_tokens=30_000, context_window=8_192),
        refused("new", 200.0, "local", estimate=60_000, prompt_tokens=40_960,
                context_window=32_768),
        refused("vllm", 150.0, "vllm"),
        refused("long-ago", 10.0, "lmstudio"),
        # Arrived before `since`, refused after it (a long prefill): it counts.
        msgspec.structs.replace(refused("slow", 40.0, "llamacpp"), total_ms=20_000.0),
        # Written before the estimate was kept: nothing to learn from.
        refused("unestimated", 210.0, "ollama", estimate=None),
        request_row("fine", ts=220.0, provider="local"),
    ]  # fmt: skip
    await write(conn, *rows)
    assert await reads.request(reader, "new") == rows[1]
    assert await overflows.recent_overflows(reader, since=50.0) == [
        overflows.Overflow(provider="llamacpp", ts=60.0, prompt_estimate=50_000,
                           prompt_tokens=None, context_window=None),
        overflows.Overflow(provider="local", ts=200.08, prompt_estimate=60_000,
                           prompt_tokens=40_960, context_window=32_768),
        overflows.Overflow(provider="vllm", ts=150.08, prompt_estimate=50_000,
                           prompt_tokens=None, context_window=None),
    ]  # fmt: skip
    assert await overflows.recent_overflows(reader, since=201.0) == []


async def test_each_providers_latest_answer_from_a_prompt_it_cut(
    conn: aiosqlite.Connection, reader: aiosqlite.Connection
) -> None:
    def answered(
        rid: str, ts: float, provider: str, estimate: int | None, read: int, **kw: object
    ) -> RequestRow:
        return request_row(
            rid, ts=ts, provider=provider, prompt_estimate=estimate, input_tokens=read, **kw
        )

    await write(
        conn,
        answered("old", 100.0, "ollama", 26_000, 2048),
        answered("new", 200.0, "ollama", 26_000, 4000, cache_read_input_tokens=96),
        answered("whole", 210.0, "ollama", 26_000, 25_000),
        answered("short", 220.0, "lmstudio", 3000, 10),
        answered("guessed", 230.0, "vllm", 26_000, 10, usage_estimated=True),
        answered("unestimated", 240.0, "vllm", None, 10),
        answered("nothing-read", 250.0, "vllm", 26_000, 0),
        # Images count 1600 each in the estimate, but a backend may count
        # them far fewer: judged on the text, 6000 tokens, all read.
        answered("pictures", 260.0, "llava", 22_000, 6300, prompt_images=10),
        answered("cut-pictures", 270.0, "qwen-vl", 22_000, 2000, prompt_images=10),
        # Ten icons counting 54 tokens each: the text is 11,460 tokens, and
        # cut. The same row from before what images count for was kept (1600
        # each) leaves too little text to judge.
        answered("cut-icons", 280.0, "minicpm", 12_000, 3000, prompt_images=10,
                 prompt_image_tokens=540),
        answered("old-icons", 290.0, "moondream", 12_000, 3000, prompt_images=10),
    )  # fmt: skip
    cuts = {"ratio": 0.4, "min_tokens": 4096, "image_tokens": 1600}
    assert await overflows.recent_cuts(reader, since=50.0, **cuts) == [
        overflows.Overflow(provider="minicpm", ts=280.08, prompt_estimate=12_000, read_tokens=3000),
        overflows.Overflow(provider="ollama", ts=200.08, prompt_estimate=26_000, read_tokens=4096),
        overflows.Overflow(provider="qwen-vl", ts=270.08, prompt_estimate=22_000, read_tokens=2000),
    ]
    assert await overflows.recent_cuts(reader, since=201.0, **cuts) == [
        overflows.Overflow(provider="minicpm", ts=280.08, prompt_estimate=12_000, read_tokens=3000),
        overflows.Overflow(provider="qwen-vl", ts=270.08, prompt_estimate=22_000, read_tokens=2000),
    ]


async def test_long_holds_and_forgettings_from_the_audit_log(
    conn: aiosqlite.Connection, reader: aiosqlite.Connection
) -> None:
    def audited(ts: float, event: str, **fields: object) -> AuditEvent:
        return AuditEvent(ts=ts, event=event, fields=fields)

    held = events.PROVIDER_WINDOW_HELD
    await write(
        conn,
        audited(100.0, held, provider="local", limit=9000, hold_s=1200.0, window=8192, cut=False),
        audited(300.0, held, provider="local", limit=8000, hold_s=2400.0, window=8192, cut=False),
        audited(200.0, held, provider="ollama", limit=4096, hold_s=1200.0, window=None, cut=True),
        audited(250.0, held, provider="odd", limit="many"),  # not a hold: passed over
        audited(260.0, events.PROVIDER_WINDOW_FORGOTTEN, provider="ollama", via="manual"),
        audited(20.0, held, provider="old", limit=1, hold_s=1200.0),
    )
    assert await overflows.windows_held(reader, since=50.0) == [
        overflows.Held(provider="local", ts=300.0, limit=8000, hold_s=2400.0, window=8192),
        overflows.Held(provider="ollama", ts=200.0, limit=4096, hold_s=1200.0, cut=True),
    ]
    assert await overflows.windows_forgotten(reader, since=50.0) == {"ollama": 260.0}


async def test_month_totals_and_exclusions(
    conn: aiosqlite.Connection, reader: aiosqlite.Connection
) -> None:
    inc = BudgetIncrement(provider="or", month="2025-06", cost_usd=0.5, input_tokens=3,
                          output_tokens=4)  # fmt: skip
    may = BudgetIncrement(provider="or", month="2025-05", cost_usd=9.0, input_tokens=0,
                          output_tokens=0)  # fmt: skip
    await write(
        conn,
        FinishedRequest(row=request_row("j1"), spend=inc),
        FinishedRequest(row=request_row("j2"), spend=inc),
        FinishedRequest(row=request_row("m1"), spend=may),
        ExclusionSet(provider="b", reason="oom", since=5.0, until=65.0),
        ExclusionSet(provider="a", reason="manual", since=1.0),
        ExclusionSet(provider="c", reason="x", since=1.0),
        ExclusionCleared(provider="c"),
    )  # fmt: skip
    totals = await reads.month_totals(reader, "2025-06")
    assert totals == {
        "or": reads.BudgetTotal(cost_usd=1.0, input_tokens=6, output_tokens=8, requests=2)
    }
    assert await reads.month_totals(reader, "2024-01") == {}
    assert await reads.exclusions(reader) == [
        ExclusionSet(provider="a", reason="manual", since=1.0, until=None),
        ExclusionSet(provider="b", reason="oom", since=5.0, until=65.0),
    ]


async def test_health_and_integrity(
    conn: aiosqlite.Connection, reader: aiosqlite.Connection, db_file: Path
) -> None:
    await write(conn, request_row("a"))
    size, wal = reads.file_sizes(db_file)
    assert size > 0
    assert wal > 0  # the writer is still open, so its WAL is there
    assert await reads.integrity_check(reader) == []


async def test_sizes_of_a_database_without_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    c = await open_db(path)
    await c.close()
    assert reads.file_sizes(path)[1] == 0  # no WAL after a clean close
