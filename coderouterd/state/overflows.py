"""What the request log and the audit log say of prompts too long for a
backend: refusals, cuts, and when a learned window was forgotten (read at
start by routing/windows.py)."""

from __future__ import annotations

import aiosqlite
import msgspec

from coderouterd.telemetry import events


class Overflow(msgspec.Struct, frozen=True, kw_only=True):
    """A prompt too long for a provider's window: refused (with the counts
    its error named), or cut (`read_tokens`: what it read of it)."""

    provider: str
    ts: float
    prompt_estimate: int
    prompt_tokens: int | None = None
    context_window: int | None = None
    read_tokens: int | None = None


# Refusals or cuts read back at start at most: the newest, when a backend
# refused every request of a chain that had nothing else to try.
MAX_OVERFLOWS = 5000


async def recent_overflows(conn: aiosqlite.Connection, *, since: float) -> list[Overflow]:
    """Every `too_long` attempt in a request since `since` (the newest
    MAX_OVERFLOWS), oldest first."""
    rows = await conn.execute_fetchall(
        "SELECT * FROM ("
        "  SELECT a.provider, r.ts, r.prompt_estimate, a.prompt_tokens, a.context_window"
        "  FROM requests r JOIN attempts a ON a.request_id = r.id"
        "  WHERE r.ts >= ? AND a.outcome = 'too_long' AND r.prompt_estimate IS NOT NULL"
        "  ORDER BY r.ts DESC LIMIT ?"
        ") ORDER BY 2",
        (since, MAX_OVERFLOWS),
    )
    return [
        Overflow(
            provider=r[0], ts=r[1], prompt_estimate=r[2], prompt_tokens=r[3], context_window=r[4]
        )
        for r in rows
    ]


async def recent_cuts(
    conn: aiosqlite.Connection,
    *,
    since: float,
    ratio: float,
    min_tokens: int,
    image_tokens: int,
) -> list[Overflow]:
    """Every answer since `since` (the newest MAX_OVERFLOWS), oldest first,
    from a prompt its backend cut: of a prompt whose text (the estimate
    without `image_tokens` for each inline image) is estimated at
    `min_tokens` or more, it read (input tokens, cache reads and writes, as
    it reported them) under `ratio` of that (telemetry/truncation.py, was_cut)."""
    rows = await conn.execute_fetchall(
        "SELECT * FROM ("
        "  SELECT provider, ts, prompt_estimate, read FROM ("
        "   SELECT provider, ts, prompt_estimate, input_tokens"
        "    + coalesce(cache_read_input_tokens, 0) + coalesce(cache_creation_input_tokens, 0)"
        "    AS read, prompt_estimate - coalesce(prompt_images, 0) * :image_tokens AS text"
        "   FROM requests"
        "   WHERE ts >= :since AND provider IS NOT NULL AND usage_estimated = 0"
        "    AND input_tokens IS NOT NULL"
        "  ) WHERE text >= :min_tokens AND read > 0 AND read < :ratio * text"
        "  ORDER BY ts DESC LIMIT :limit"
        ") ORDER BY ts",
        {
            "since": since,
            "ratio": ratio,
            "min_tokens": min_tokens,
            "image_tokens": image_tokens,
            "limit": MAX_OVERFLOWS,
        },
    )
    return [Overflow(provider=r[0], ts=r[1], prompt_estimate=r[2], read_tokens=r[3]) for r in rows]


async def windows_forgotten(conn: aiosqlite.Connection, *, since: float) -> dict[str, float]:
    """When each provider's learned context window was last forgotten since
    `since` (a `provider.window_forgotten` audit event)."""
    rows = await conn.execute_fetchall(
        "SELECT json_extract(fields, '$.provider'), max(ts) FROM audit"
        " WHERE event = ? AND ts >= ? GROUP BY 1",
        (events.PROVIDER_WINDOW_FORGOTTEN, since),
    )
    return {r[0]: r[1] for r in rows if r[0] is not None}
