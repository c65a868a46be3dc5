"""Typed reads of the state database, meant for a read-only connection.

Each function is one or two SELECTs; rows come back as the same Structs the
writer takes, so a reader and the writer cannot disagree about a column.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite
import msgspec

from coderouterd.state.records import (
    ATTEMPT_COLUMNS,
    REQUEST_COLUMNS,
    AttemptRow,
    ExclusionSet,
    RequestRow,
)
from coderouterd.state.request_recorder import BUDGET_THRESHOLD
from coderouterd.telemetry import events

_T = TypeVar("_T")


class BudgetTotal(msgspec.Struct, frozen=True, kw_only=True):
    cost_usd: float
    input_tokens: int
    output_tokens: int
    requests: int


# When a request's answer (or last attempt) came, for queries that name
# `requests` r: what the daemon learned from, as it learned it, whereas
# `requests.ts` is when the request arrived.
FINISHED = "(r.ts + coalesce(r.total_ms, 0) / 1000.0)"

# Whether a request's client got an error: an error status, or an error event
# inside a stream its 200 had begun (a cut, a timeout), which keeps the 200.
FAILED = "(status >= 400 OR error IS NOT NULL)"

# Column names come from records.py, never from input.
_SELECT_REQUESTS = f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests"  # noqa: S608
# The request ids travel as one JSON array: one parameter however many ids.
_SELECT_ATTEMPTS = (
    f"SELECT {', '.join(ATTEMPT_COLUMNS)} FROM attempts"  # noqa: S608
    " WHERE request_id IN (SELECT value FROM json_each(?)) ORDER BY request_id, seq"
)


async def recent_requests(
    conn: aiosqlite.Connection,
    *,
    since: float | None,
    provider: str | None,
    limit: int,
    profile: str | None = None,
    failed: bool = False,
) -> list[RequestRow]:
    """The newest requests first, each with its attempts; `failed`: only
    those the client got an error for (FAILED: an error status, or an error
    event ending a stream)."""
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("ts >= ?", since), ("provider = ?", provider), ("profile = ?", profile)):
        if value is not None:
            where.append(column)
            params.append(value)
    if failed:
        where.append(FAILED)
    sql = _SELECT_REQUESTS
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY ts DESC, id LIMIT ?"
    params.append(limit)
    rows = await conn.execute_fetchall(sql, params)
    return await _with_attempts(conn, rows)


async def has_replay(conn: aiosqlite.Connection, request_id: str) -> bool:
    rows = await conn.execute_fetchall("SELECT 1 FROM replays WHERE request_id = ?", (request_id,))
    return bool(rows)


async def request(conn: aiosqlite.Connection, request_id: str) -> RequestRow | None:
    rows = await conn.execute_fetchall(_SELECT_REQUESTS + " WHERE id = ?", (request_id,))
    found = await _with_attempts(conn, rows)
    return found[0] if found else None


async def _with_attempts(
    conn: aiosqlite.Connection, rows: Iterable[sqlite3.Row]
) -> list[RequestRow]:
    requests = list(rows)
    if not requests:
        return []
    ids = json.dumps([r[0] for r in requests])
    by_request: dict[str, list[AttemptRow]] = {}
    for a in await conn.execute_fetchall(_SELECT_ATTEMPTS, (ids,)):
        by_request.setdefault(a[0], []).append(_attempt(a))
    return [_request(r, tuple(by_request.get(r[0], ()))) for r in requests]


def _request(r: sqlite3.Row, attempts: tuple[AttemptRow, ...]) -> RequestRow:
    return RequestRow(
        id=r[0], ts=r[1], dialect=r[2], profile=r[3], requested_model=r[4], provider=r[5],
        status=r[6], stream=bool(r[7]), ttfb_ms=r[8], total_ms=r[9], input_tokens=r[10],
        output_tokens=r[11], cache_creation_input_tokens=r[12], cache_read_input_tokens=r[13],
        usage_estimated=bool(r[14]), cost_usd=r[15], savings_usd=r[16], cache_outcome=r[17],
        repairs=r[18], error=r[19], client_disconnected=bool(r[20]), stop_reason=r[21],
        tool_use=None if r[22] is None else bool(r[22]), tools_offered=bool(r[23]),
        prompt_estimate=r[24], prompt_images=r[25], prompt_image_tokens=r[26],
        attempts=attempts,
    )  # fmt: skip


def _attempt(a: sqlite3.Row) -> AttemptRow:
    return AttemptRow(
        seq=a[1], provider=a[2], outcome=a[3], reason=a[4], detail=a[5], status=a[6],
        ttfb_ms=a[7], latency_ms=a[8], cost_usd=a[9], context_window=a[10], prompt_tokens=a[11],
        queued_ms=a[12], model=a[13], prompt_estimate=a[14],
    )  # fmt: skip


async def month_totals(conn: aiosqlite.Connection, month: str) -> dict[str, BudgetTotal]:
    """Spend per provider in one UTC month ('YYYY-MM')."""
    rows = await conn.execute_fetchall(
        "SELECT provider, cost_usd, input_tokens, output_tokens, requests"
        " FROM budget_totals WHERE month = ? ORDER BY provider",
        (month,),
    )
    return {
        r[0]: BudgetTotal(cost_usd=r[1], input_tokens=r[2], output_tokens=r[3], requests=r[4])
        for r in rows
    }


async def thresholds_audited(conn: aiosqlite.Connection, month: str) -> set[tuple[str, float, int]]:
    """The budget thresholds the audit log holds as crossed in one UTC month:
    (provider, budget, percent) of each `budget.threshold_crossed` whose
    `month` it is."""
    rows = await conn.execute_fetchall(
        "SELECT DISTINCT json_extract(fields, '$.provider'), json_extract(fields, '$.budget_usd'),"
        " json_extract(fields, '$.percent')"
        " FROM audit WHERE event = ? AND json_extract(fields, '$.month') = ?",
        (BUDGET_THRESHOLD, month),
    )
    return {
        (p, float(b), t)
        for p, b, t in rows
        if isinstance(p, str) and isinstance(b, int | float) and isinstance(t, int)
    }


# How many request ids chosen by clients are remembered (at start, from the log).
CLIENT_IDS_KEPT = 65_536


# A generated id (ingress/middleware.py), which the middleware knows by its shape.
_GENERATED_ID = "req_" + "[0-9a-f]" * 24


async def client_request_ids(conn: aiosqlite.Connection, limit: int) -> list[str]:
    """The ids clients chose (not generated ones) among the latest `limit`
    requests, oldest first: a client that reuses one after a restart gets a
    new id instead of a row the request log refuses. Only those rows are
    read, however long the log."""
    rows = await conn.execute_fetchall(
        "SELECT id FROM (SELECT id, ts FROM requests ORDER BY ts DESC LIMIT ?)"
        " WHERE id NOT GLOB ? ORDER BY ts",
        (limit, _GENERATED_ID),
    )
    return [str(r[0]) for r in rows]


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    """What one request did for a provider (request row columns): its
    attempts there that failed, and the answer, when it gave one the client
    got whole."""

    output_tokens: int | None
    stop_reason: str | None
    tool_use: bool
    tools_offered: bool
    failures: int = 0
    answered: bool = True
    # When the request finished (wall clock).
    ts: float = 0.0


# The log is searched this far back: older outcomes say little of a provider
# now, and a provider seldom used would have the whole log read at every start.
RECENT_S = 86400.0


# `ctl restore NAME` forgets the provider's drift; the daemon audits each
# provider action as `ctl.action` with `action` "restore NAME" (daemon.py).
_RESTORED = (
    "SELECT max(ts) FROM audit WHERE event = :event AND ts >= :since"
    " AND json_extract(fields, '$.action') = 'restore ' || :p"
)


# An attempt `a` sent to the model :m, as far as the log tells: a row written
# before attempts kept their model counts as one, so an upgrade forgets nothing.
_SENT_TO_MODEL = "(a.model IS NULL OR a.model = :m)"


async def recent_answers(
    conn: aiosqlite.Connection, provider: str, limit: int, *, now: float, model: str
) -> list[Answer]:
    """The provider's last `limit` requests, oldest first, that it failed
    or answered whole (status below 400, the client still there) within
    RECENT_S and since its drift was last forgotten (`ctl restore`), its
    attempts sent to `model` only: another model's outcomes do not judge
    this one. Rows written before their reply's shape was kept count only
    for their failures."""
    rows = await conn.execute_fetchall(
        "SELECT output_tokens, stop_reason, tool_use, tools_offered, failures, answered,"  # noqa: S608 - constants
        " finished FROM ("
        f"  SELECT r.ts, {FINISHED} AS finished, r.output_tokens, r.stop_reason,"
        "   r.tool_use, r.tools_offered,"
        "   (SELECT count(*) FROM attempts a WHERE a.request_id = r.id AND a.provider = :p"
        f"    AND a.outcome = 'failed' AND {_SENT_TO_MODEL}) AS failures,"
        "   (r.provider IS :p AND r.status < 400 AND r.error IS NULL"
        "    AND r.client_disconnected = 0 AND r.tool_use IS NOT NULL"
        "    AND EXISTS (SELECT 1 FROM attempts a WHERE a.request_id = r.id AND a.provider = :p"
        f"     AND a.outcome <> 'skipped' AND {_SENT_TO_MODEL})) AS answered"
        "  FROM requests r WHERE r.ts >= :since"
        f") WHERE (failures > 0 OR answered) AND finished > coalesce(({_RESTORED}), 0)"
        " ORDER BY ts DESC LIMIT :limit",
        {
            "p": provider,
            "m": model,
            "since": now - RECENT_S,
            "limit": limit,
            "event": events.CTL_ACTION,
        },
    )
    return [
        Answer(
            output_tokens=r[0],
            stop_reason=r[1],
            tool_use=bool(r[2]),
            tools_offered=bool(r[3]),
            failures=r[4],
            answered=bool(r[5]),
            ts=r[6],
        )
        for r in reversed(list(rows))
    ]


class ProviderRead(Protocol[_T]):
    """A read of one provider's last requests (StateService.per_provider)."""

    async def __call__(
        self, conn: aiosqlite.Connection, provider: str, limit: int, *, now: float
    ) -> list[_T]: ...


class ModelRead(Protocol[_T]):
    """A read of one provider's last requests to one model (recent_answers, recent_streams)."""

    async def __call__(
        self, conn: aiosqlite.Connection, provider: str, limit: int, *, now: float, model: str
    ) -> list[_T]: ...


def to_models(read: ModelRead[_T], models: Mapping[str, str]) -> ProviderRead[_T]:
    """`read` of each provider's requests to its model in `models` (the
    configured `model`): pace and drift at start-up judge a model on its own."""

    async def bound(
        conn: aiosqlite.Connection, provider: str, limit: int, *, now: float
    ) -> list[_T]:
        return await read(conn, provider, limit, now=now, model=models[provider])

    return bound


class Streamed(msgspec.Struct, frozen=True, kw_only=True):
    """A streamed answer: when it ended, its output tokens and its attempt's timings."""

    ts: float
    output_tokens: int | None
    ttfb_ms: float | None
    latency_ms: float | None


async def recent_streams(
    conn: aiosqlite.Connection, provider: str, limit: int, *, now: float, model: str
) -> list[Streamed]:
    """The provider's last `limit` streamed answers from `model` within
    RECENT_S that reached their client whole, oldest first: another model
    decodes at a speed of its own."""
    rows = await conn.execute_fetchall(
        f"SELECT {FINISHED}, r.output_tokens, a.ttfb_ms, a.latency_ms FROM requests r"  # noqa: S608 - constants
        " JOIN attempts a ON a.request_id = r.id AND a.provider = r.provider AND a.outcome = 'ok'"
        f" AND {_SENT_TO_MODEL}"
        " WHERE r.provider = :p AND r.ts >= :since AND r.stream = 1 AND r.status < 400"
        " AND r.client_disconnected = 0 ORDER BY r.ts DESC LIMIT :limit",
        {"p": provider, "m": model, "since": now - RECENT_S, "limit": limit},
    )
    return [
        Streamed(ts=r[0], output_tokens=r[1], ttfb_ms=r[2], latency_ms=r[3])
        for r in reversed(list(rows))
    ]


async def exclusions(conn: aiosqlite.Connection) -> list[ExclusionSet]:
    rows = await conn.execute_fetchall(
        "SELECT provider, reason, since, until FROM exclusions ORDER BY provider"
    )
    return [ExclusionSet(provider=r[0], reason=r[1], since=r[2], until=r[3]) for r in rows]


async def last_restarts(conn: aiosqlite.Connection) -> dict[str, float]:
    """When each provider's restart_command last started (wall time), from
    its `provider.restart_command` audit events: written when it ended,
    `duration_ms` after it started."""
    rows = await conn.execute_fetchall(
        "SELECT json_extract(fields, '$.provider'),"
        " max(ts - coalesce(json_extract(fields, '$.duration_ms'), 0) / 1000.0)"
        " FROM audit WHERE event = ? GROUP BY 1",
        (events.PROVIDER_RESTART_COMMAND,),
    )
    return {r[0]: r[1] for r in rows if isinstance(r[0], str) and isinstance(r[1], float)}


async def episodes(conn: aiosqlite.Connection) -> tuple[int, dict[str, int]]:
    """The largest episode self-healing's audit events name, and the
    episode of each provider's last `provider.excluded`: that of its
    `exclusions` row, written with it in one transaction."""
    told = (events.PROVIDER_EXCLUDED, events.PROVIDER_RESTORED, events.PROVIDER_RESTART_COMMAND)
    [(top,)] = await conn.execute_fetchall(
        "SELECT max(json_extract(fields, '$.episode')) FROM audit WHERE event IN (?, ?, ?)", told
    )
    rows = await conn.execute_fetchall(
        "SELECT json_extract(fields, '$.provider'), json_extract(fields, '$.episode') FROM audit"
        " WHERE seq IN (SELECT max(seq) FROM audit WHERE event = ?"
        " GROUP BY json_extract(fields, '$.provider'))",
        (events.PROVIDER_EXCLUDED,),
    )
    last = {r[0]: r[1] for r in rows if isinstance(r[0], str) and isinstance(r[1], int)}
    return (top if isinstance(top, int) else 0), last


def file_sizes(path: Path) -> tuple[int, int]:
    """The database file's size and its WAL's, read from the files alone (a
    damaged database has them too)."""
    return _file_size(path), _file_size(path.with_name(path.name + "-wal"))


def _file_size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        # No WAL file between a clean close and the next write.
        return 0


async def integrity_check(conn: aiosqlite.Connection) -> list[str]:
    """SQLite's own findings; empty when the database is sound."""
    rows = await conn.execute_fetchall("PRAGMA integrity_check")
    problems = [str(r[0]) for r in rows]
    return [] if problems == ["ok"] else problems
