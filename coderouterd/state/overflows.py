"""What the request log and the audit log say of prompts too long for a
backend: refusals, cuts and long holds, each with the model it came from,
and when a learned window was forgotten (read at start by routing/windows.py)."""

from __future__ import annotations

import aiosqlite
import msgspec

from coderouterd.state.reads import FINISHED
from coderouterd.telemetry import events


class Overflow(msgspec.Struct, frozen=True, kw_only=True):
    """A prompt too long for a provider's window: refused (with the counts
    its error named), or cut (`read_tokens`: what it read of it)."""

    provider: str
    ts: float
    # As the provider was sent the prompt (a refusal), or as the request
    # log kept it (a cut: the answering provider's).
    prompt_estimate: int
    prompt_tokens: int | None = None
    context_window: int | None = None
    read_tokens: int | None = None
    # The model the refused (or cut) prompt was sent to; None in rows
    # written before attempts kept it.
    model: str | None = None


# Refusals and cuts are dated by when their request finished (FINISHED);
# those arrived up to an hour earlier are looked at (the index is on arrival).
_LONGEST_S = 3600.0


# The prompt as the refusing provider was sent it; in rows written before
# attempts kept theirs, the request's (the answering provider's) stands in.
_REFUSED_ESTIMATE = "coalesce(a.prompt_estimate, r.prompt_estimate)"


async def recent_overflows(conn: aiosqlite.Connection, *, since: float) -> list[Overflow]:
    """Each provider's latest `too_long` attempt to each model in a request
    finished since `since` (`ts`: when it finished), with the prompt
    estimated as that provider was sent it: another model's refusal must not
    hide the latest of the model the provider is configured with."""
    # SQLite takes a bare column of an aggregate query with max() from the
    # row holding the maximum: each provider's latest refusal, whole.
    rows = await conn.execute_fetchall(
        f"SELECT a.provider, a.model, max({FINISHED}), {_REFUSED_ESTIMATE}, a.prompt_tokens,"  # noqa: S608 - constants
        " a.context_window FROM requests r JOIN attempts a ON a.request_id = r.id"
        f" WHERE r.ts >= ? AND {FINISHED} >= ? AND a.outcome = 'too_long'"
        f" AND {_REFUSED_ESTIMATE} IS NOT NULL"
        " GROUP BY a.provider, a.model ORDER BY a.provider, a.model",
        (since - _LONGEST_S, since),
    )
    return [
        Overflow(
            provider=provider,
            model=model,
            ts=ts,
            prompt_estimate=estimate,
            prompt_tokens=tokens,
            context_window=window,
        )
        for provider, model, ts, estimate, tokens, window in rows
    ]


# The model that answered the request `r`: its last attempt's, as no attempt
# follows the one that answers.
_ANSWERING_MODEL = (
    "SELECT a.model FROM attempts a WHERE a.request_id = r.id ORDER BY a.seq DESC LIMIT 1"
)


async def recent_cuts(
    conn: aiosqlite.Connection,
    *,
    since: float,
    ratio: float,
    min_tokens: int,
    image_tokens: int,
) -> list[Overflow]:
    """Each provider's latest answer from each model (its request's last
    attempt's), finished since `since` (`ts`: when), from a prompt it cut: of
    a prompt whose text (the estimate without what its inline images count
    for; `image_tokens` each in rows from before that was kept) is estimated
    at `min_tokens` or more, it read (input tokens, cache reads and writes,
    as it reported them) under `ratio` of that (telemetry/truncation.py,
    was_cut)."""
    rows = await conn.execute_fetchall(
        "SELECT provider, model, max(finished), prompt_estimate, read FROM ("  # noqa: S608 - a constant
        f"  SELECT provider, ({_ANSWERING_MODEL}) AS model, {FINISHED} AS finished,"
        "   prompt_estimate, input_tokens"
        "   + coalesce(cache_read_input_tokens, 0) + coalesce(cache_creation_input_tokens, 0)"
        "   AS read, prompt_estimate"
        "   - coalesce(prompt_image_tokens, coalesce(prompt_images, 0) * :image_tokens) AS text"
        "  FROM requests r"
        "  WHERE ts >= :arrived AND provider IS NOT NULL AND usage_estimated = 0"
        "   AND input_tokens IS NOT NULL"
        ") WHERE finished >= :since AND text >= :min_tokens AND read > 0 AND read < :ratio * text"
        " GROUP BY provider, model ORDER BY provider, model",
        {
            "since": since,
            "arrived": since - _LONGEST_S,
            "ratio": ratio,
            "min_tokens": min_tokens,
            "image_tokens": image_tokens,
        },
    )
    return [
        Overflow(provider=r[0], model=r[1], ts=r[2], prompt_estimate=r[3], read_tokens=r[4])
        for r in rows
    ]


class Held(msgspec.Struct, frozen=True, kw_only=True):
    """A limit held longer than usual (a backend that failed again soon after
    getting its chance back), as audited when the hold began."""

    provider: str
    ts: float
    limit: int
    hold_s: float
    window: int | None = None
    cut: bool = False
    # The model the limit was learned of; None in events from before it was told.
    model: str | None = None


async def windows_held(conn: aiosqlite.Connection, *, since: float) -> list[Held]:
    """Each provider's latest `provider.window_held` audit event of each model
    since `since`."""
    rows = await conn.execute_fetchall(
        "SELECT fields, max(ts) FROM audit WHERE event = ? AND ts >= ?"
        " GROUP BY json_extract(fields, '$.provider'), json_extract(fields, '$.model')",
        (events.PROVIDER_WINDOW_HELD, since),
    )
    held = []
    for fields, ts in rows:
        try:
            held.append(msgspec.convert({**msgspec.json.decode(fields), "ts": ts}, Held))
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError):
            continue  # an event of another shape: nothing to hold
    return held


async def windows_forgotten(conn: aiosqlite.Connection, *, since: float) -> dict[str, float]:
    """When each provider's learned context window was last forgotten since
    `since` (a `provider.window_forgotten` audit event)."""
    rows = await conn.execute_fetchall(
        "SELECT json_extract(fields, '$.provider'), max(ts) FROM audit"
        " WHERE event = ? AND ts >= ? GROUP BY 1",
        (events.PROVIDER_WINDOW_FORGOTTEN, since),
    )
    return {r[0]: r[1] for r in rows if r[0] is not None}


class Recent(msgspec.Struct, frozen=True, kw_only=True):
    """What start-up reads back for routing/windows.py: each provider's latest
    refusal and cut, its latest long hold, and when it was last forgotten."""

    overflows: list[Overflow]
    held: list[Held]
    forgotten: dict[str, float]


async def recent(
    conn: aiosqlite.Connection,
    *,
    now: float,
    within_s: float,
    held_within_s: float,
    ratio: float,
    min_tokens: int,
    image_tokens: int,
) -> Recent:
    """Refusals and cuts of the last `within_s`, long holds begun in the last
    `held_within_s`, forgettings since the earlier of the two."""
    since, held_since = now - within_s, now - held_within_s
    cuts = await recent_cuts(
        conn, since=since, ratio=ratio, min_tokens=min_tokens, image_tokens=image_tokens
    )
    return Recent(
        overflows=await recent_overflows(conn, since=since) + cuts,
        held=await windows_held(conn, since=held_since),
        forgotten=await windows_forgotten(conn, since=min(since, held_since)),
    )
