"""Totals of the request log per group, for `coderouterd usage` (a read-only connection)."""

from __future__ import annotations

import sqlite3

import aiosqlite
import msgspec

from coderouterd.state.reads import FAILED


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Requests of one group (a provider, profile, model or UTC day) and what they used."""

    key: str
    requests: int
    # Those the client got an error for, as `requests --failed` lists them.
    failed: int
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int
    # Requests whose usage the backend did not report (estimated) are counted all the same.
    estimated: int
    cost_usd: float
    savings_usd: float


# What `usage` groups by: fixed SQL expressions, never input.
USAGE_GROUPS = {
    "provider": "COALESCE(provider, '-')",
    "profile": "CASE WHEN profile = '' THEN '-' ELSE profile END",
    "model": "COALESCE(requested_model, '-')",
    "day": "strftime('%Y-%m-%d', ts, 'unixepoch')",
}


async def usage(conn: aiosqlite.Connection, *, since: float | None, by: str) -> list[Usage]:
    """Totals of the request log (from `since`) per group of `by`."""
    key = USAGE_GROUPS[by]
    sql = (
        f"SELECT {key}, count(*), sum({FAILED}),"  # noqa: S608 - fixed expressions
        " total(input_tokens), total(output_tokens), total(cache_read_input_tokens),"
        " total(cache_creation_input_tokens), sum(usage_estimated), total(cost_usd),"
        " total(savings_usd) FROM requests"
        + (" WHERE ts >= ?" if since is not None else "")
        # Days in order; other groups the costliest first, then the busiest.
        + (" GROUP BY 1 ORDER BY 1" if by == "day" else " GROUP BY 1 ORDER BY 9 DESC, 2 DESC, 1")
    )
    rows = await conn.execute_fetchall(sql, () if since is None else (since,))
    return [_usage(r) for r in rows]


def _usage(r: sqlite3.Row) -> Usage:
    return Usage(
        key=r[0], requests=r[1], failed=r[2], input_tokens=int(r[3]), output_tokens=int(r[4]),
        cache_read_input_tokens=int(r[5]), cache_creation_input_tokens=int(r[6]),
        estimated=r[7], cost_usd=r[8], savings_usd=r[9],
    )  # fmt: skip
