"""Each record's statements do what its name says, run against the real schema in memory."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from coderouterd.state.chain import GENESIS, chain_hash
from coderouterd.state.migrate import split_statements
from coderouterd.state.records import (
    ADD_BUDGET,
    BODY_DELTA,
    BODY_WHOLE,
    INSERT_ATTEMPT,
    INSERT_AUDIT,
    INSERT_REQUEST,
    REQUEST_COLUMNS,
    AttemptRow,
    AuditEvent,
    BudgetIncrement,
    ExclusionCleared,
    ExclusionSet,
    FinishedRequest,
    ReplayRow,
    RequestRow,
    Statement,
    batch_statements,
)

MIGRATIONS = sorted((Path(__file__).parents[3] / "migrations").glob("*.sql"))


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    for path in MIGRATIONS:
        for statement in split_statements(path.read_text()):
            conn.execute(statement)
    yield conn
    conn.close()


def run(db: sqlite3.Connection, statements: list[Statement]) -> None:
    for sql, params in statements:
        db.execute(sql, params)


def request(rid: str = "r1", **kw: object) -> RequestRow:
    fields: dict[str, object] = {
        "id": rid, "ts": 10.5, "dialect": "openai", "profile": "fast",
        "requested_model": "gpt-x", "provider": "vllm", "status": 200, "stream": True,
        "ttfb_ms": 4.0, "total_ms": 9.0, "input_tokens": 11, "output_tokens": 22,
        "cache_creation_input_tokens": 3, "cache_read_input_tokens": 4,
        "usage_estimated": True, "cost_usd": 0.25, "savings_usd": 0.5, "cache_outcome": "hit",
        "repairs": 2, "error": None, "client_disconnected": False,
    }  # fmt: skip
    fields.update(kw)
    return msgspec.convert(fields, RequestRow)


def test_request_row_inserts_every_column_and_its_attempts(db: sqlite3.Connection) -> None:
    row = request(
        attempts=(
            AttemptRow(seq=0, provider="a", outcome="skipped", reason="budget"),
            AttemptRow(
                seq=1,
                provider="vllm",
                outcome="ok",
                status=200,
                ttfb_ms=4.0,
                latency_ms=9.0,
                cost_usd=0.25,
            ),
        )
    )
    statements = row.statements()
    assert [s[0] for s in statements] == [INSERT_REQUEST, INSERT_ATTEMPT, INSERT_ATTEMPT]
    run(db, statements)
    columns = ", ".join(REQUEST_COLUMNS)
    stored = db.execute(f"SELECT {columns} FROM requests").fetchone()  # noqa: S608
    expected = msgspec.structs.asdict(row)
    expected.pop("attempts")
    assert dict(zip(REQUEST_COLUMNS, stored, strict=True)) == {
        k: int(v) if isinstance(v, bool) else v for k, v in expected.items()
    }
    attempts = db.execute(
        "SELECT request_id, seq, provider, outcome, reason, status, cost_usd FROM attempts"
        " ORDER BY seq"
    ).fetchall()
    assert attempts == [
        ("r1", 0, "a", "skipped", "budget", None, None),
        ("r1", 1, "vllm", "ok", None, 200, 0.25),
    ]


def test_replay_row_is_stored_with_its_request(db: sqlite3.Connection) -> None:
    run(db, request().statements())
    replay = ReplayRow(
        request_id="r1", ts=10.5, dialect="openai", profile="fast", provider="vllm",
        stream=True, request_headers='{"a":"b"}', request_body=b"\x00zz", response_body=None,
        response_truncated=True, size=3,
    )  # fmt: skip
    run(db, replay.statements())
    assert db.execute("SELECT * FROM replays").fetchall() == [
        ("r1", 10.5, "openai", "fast", "vllm", 1, '{"a":"b"}', b"\x00zz", None, 1, 3, 0, None,
         None)
    ]  # fmt: skip


def test_delta_is_stored_only_when_its_base_is(db: sqlite3.Connection) -> None:
    run(db, request().statements())
    run(db, request("r2").statements())
    delta = ReplayRow(
        request_id="r2", ts=11.0, dialect="openai", profile="fast", provider="vllm",
        stream=False, request_headers="{}", request_body=b"\x00more", response_body=None,
        response_truncated=False, size=5, body_format=BODY_DELTA, base_id="r1", base_len=4,
    )  # fmt: skip
    run(db, delta.statements())
    assert db.execute("SELECT count(*) FROM replays").fetchone() == (0,)
    base = msgspec.structs.replace(delta, request_id="r1", body_format=BODY_WHOLE,
                                   base_id=None, base_len=None)  # fmt: skip
    run(db, [*base.statements(), *delta.statements()])
    assert db.execute(
        "SELECT request_id, body_format, base_id, base_len FROM replays ORDER BY request_id"
    ).fetchall() == [("r1", BODY_WHOLE, None, None), ("r2", BODY_DELTA, "r1", 4)]


def test_replay_without_its_request_is_skipped_not_an_error(db: sqlite3.Connection) -> None:
    replay = ReplayRow(
        request_id="gone", ts=1.0, dialect="openai", profile="p", provider=None, stream=False,
        request_headers="{}", request_body=b"", response_body=b"", response_truncated=False,
        size=0,
    )  # fmt: skip
    run(db, replay.statements())
    assert db.execute("SELECT count(*) FROM replays").fetchone() == (0,)


def test_budget_increments_add_up_per_provider_and_month(db: sqlite3.Connection) -> None:
    for cost, tin, tout in ((0.5, 10, 20), (0.25, 1, 2)):
        inc = BudgetIncrement(
            provider="or", month="2025-06", cost_usd=cost, input_tokens=tin, output_tokens=tout
        )
        assert inc.statements()[0][0] == ADD_BUDGET
        run(db, inc.statements())
    other = BudgetIncrement(
        provider="or", month="2025-07", cost_usd=1.0, input_tokens=1, output_tokens=1
    )
    run(db, other.statements())
    rows = db.execute("SELECT * FROM budget_totals ORDER BY month").fetchall()
    assert rows == [("or", "2025-06", 0.75, 11, 22, 2), ("or", "2025-07", 1.0, 1, 1, 1)]


def test_a_finished_request_writes_its_row_then_its_spend(db: sqlite3.Connection) -> None:
    spend = BudgetIncrement(
        provider="vllm", month="2025-06", cost_usd=0.25, input_tokens=11, output_tokens=22
    )
    statements = FinishedRequest(row=request(), spend=spend).statements()
    assert [s[0] for s in statements] == [INSERT_REQUEST, ADD_BUDGET]
    run(db, statements)
    assert db.execute("SELECT id FROM requests").fetchall() == [("r1",)]
    assert db.execute("SELECT * FROM budget_totals").fetchall() == [
        ("vllm", "2025-06", 0.25, 11, 22, 1)
    ]
    assert FinishedRequest(row=request("r2")).statements() == request("r2").statements()


def test_exclusion_set_replaces_and_cleared_deletes(db: sqlite3.Connection) -> None:
    run(db, ExclusionSet(provider="p", reason="oom", since=1.0, until=5.0).statements())
    run(db, ExclusionSet(provider="p", reason="manual", since=2.0).statements())
    assert db.execute("SELECT * FROM exclusions").fetchall() == [("p", "manual", 2.0, None)]
    run(db, ExclusionCleared(provider="p").statements())
    assert db.execute("SELECT count(*) FROM exclusions").fetchone() == (0,)


def test_audit_row_hash_is_the_chain_hash_of_sorted_fields() -> None:
    event = AuditEvent(ts=1.25, event="provider.excluded", fields={"z": 1, "a": [True, None]})
    row = event.chained(seq=1, prev_hash=GENESIS)
    assert row.fields == '{"a":[true,null],"z":1}'
    assert row.hash == chain_hash(GENESIS, 1, 1.25, "provider.excluded", row.fields)
    reordered = AuditEvent(ts=1.25, event="provider.excluded", fields={"a": [True, None], "z": 1})
    assert reordered.chained(seq=1, prev_hash=GENESIS) == row
    assert row.statements() == [(INSERT_AUDIT, (1, 1.25, "provider.excluded", row.fields,
                                                GENESIS, row.hash))]  # fmt: skip


def test_batch_statements_group_by_table_in_foreign_key_order(db: sqlite3.Connection) -> None:
    audit = AuditEvent(ts=1.0, event="e", fields={}).chained(seq=1, prev_hash=GENESIS)
    budget = BudgetIncrement(provider="p", month="m", cost_usd=0, input_tokens=0, output_tokens=0)
    replay = ReplayRow(
        request_id="r1", ts=1.0, dialect="d", profile="p", provider=None, stream=False,
        request_headers="{}", request_body=b"", response_body=None, response_truncated=False,
        size=0,
    )  # fmt: skip
    one = request("r1", attempts=(AttemptRow(seq=0, provider="p", outcome="ok"),))
    two = request("r2", attempts=(AttemptRow(seq=0, provider="p", outcome="ok"),))
    grouped = batch_statements([audit, replay, one, FinishedRequest(row=two, spend=budget)])
    assert [(sql.split()[2], len(params)) for sql, params in grouped] == [
        ("requests", 2), ("attempts", 2), ("replays", 1), ("budget_totals", 1), ("audit", 1),
    ]  # fmt: skip
    for sql, params in grouped:
        db.executemany(sql, params)
    assert db.execute("SELECT count(*) FROM replays").fetchone() == (1,)


def test_exclusion_changes_keep_their_order_within_a_batch() -> None:
    changes = [
        ExclusionSet(provider="p", reason="a", since=1.0),
        ExclusionCleared(provider="p"),
        ExclusionSet(provider="p", reason="b", since=2.0),
    ]
    grouped = batch_statements(changes)
    assert [sql.split()[0] for sql, _ in grouped] == ["INSERT", "DELETE", "INSERT"]
