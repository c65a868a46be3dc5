"""A request's row and its spend reach the database together, or not at all."""

from __future__ import annotations

import aiosqlite
import msgspec
import pytest

from coderouterd.config.model import ProviderConfig
from coderouterd.routing.budget import BudgetBook
from coderouterd.routing.cost import month_of
from coderouterd.routing.records import AttemptRecord, RequestSummary
from coderouterd.state import reads
from coderouterd.state.audit import tail
from coderouterd.state.request_recorder import RequestRecorder
from coderouterd.state.writer import Writer
from coderouterd.wire.usage import Usage
from tests.integration.state.support_db import ManualClock, count

# 10 input + 5 output tokens at $100k / $200k per million: $2 a request.
CLOUD = msgspec.convert(
    {
        "name": "cloud",
        "base_url": "http://127.0.0.1:9",
        "model": "m",
        "cost": {
            "input_tokens_per_million": 100_000,
            "output_tokens_per_million": 200_000,
            "monthly_budget_usd": 9,
        },
    },
    ProviderConfig,
)


def pricing(name: str) -> ProviderConfig | None:
    return CLOUD if name == "cloud" else None


def summary(rid: str) -> RequestSummary:
    return RequestSummary(
        request_id=rid,
        dialect="anthropic",
        profile="default",
        requested_model="m",
        provider="cloud",
        attempts=(AttemptRecord(provider="cloud", outcome="ok", status=200),),
        status=200,
        stream=False,
        ttfb_ms=1.0,
        total_ms=2.0,
        usage=Usage(input_tokens=10, output_tokens=5),
    )


async def totals(conn: aiosqlite.Connection, month: str) -> reads.BudgetTotal:
    return (await reads.month_totals(conn, month))["cloud"]


async def test_a_full_queue_drops_a_row_with_its_spend_and_the_book_keeps_it(
    conn: aiosqlite.Connection,
) -> None:
    clock = ManualClock()
    month = month_of(clock.wall())
    writer = Writer(conn, clock=clock, max_queue=3)
    book = BudgetBook()
    recorder = RequestRecorder(writer, book, clock, pricing)
    for i in range(5):
        recorder.request_finished(summary(f"r{i}"))
    assert writer.stats().dropped == 2
    # The running daemon still counts every request against the budget.
    assert book.spent("cloud", month) == pytest.approx(10.0)
    await writer.close()
    # The database holds the three rows kept and exactly their spend.
    assert await count(conn, "requests") == 3
    kept = await totals(conn, month)
    assert (kept.requests, kept.cost_usd, kept.input_tokens) == (3, pytest.approx(6.0), 30)
    # Thresholds crossed by the dropped requests are still audited.
    crossed = [r.fields for r in await tail(conn, 10) if r.event == "budget.threshold_crossed"]
    assert [(f["percent"], f["spent_usd"]) for f in crossed] == [(80, 8.0), (100, 10.0)]


async def test_a_row_and_its_spend_share_one_transaction(conn: aiosqlite.Connection) -> None:
    clock = ManualClock()
    writer = Writer(conn, clock=clock, max_batch=1)
    recorder = RequestRecorder(writer, BudgetBook(), clock, pricing)
    for i in range(3):
        recorder.request_finished(summary(f"r{i}"))
    await writer.close()
    # One commit per request: a batch never holds a row without its spend.
    assert writer.stats().batches == 3
    assert (await totals(conn, month_of(clock.wall()))).requests == 3
