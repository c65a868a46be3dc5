"""Token usage as the Anthropic wire reports it, reading it from a whole body,
and OpenAI's counts split as Anthropic splits them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec


class Usage(msgspec.Struct, kw_only=True):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    # Anthropic's split of the cache writes by how long they live
    # (`ephemeral_5m_input_tokens`, `ephemeral_1h_input_tokens`): a 1-hour
    # write is billed higher. Read as sent: a server's own shape here must
    # not cost the four counts (hour_writes reads what it can).
    cache_creation: Any = None


# The counts every answer carries; cache_creation is an optional detail.
COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


# The most tokens one answer is counted for: past any context window and
# any answer, and far inside the 2**63 - 1 that SQLite's integers hold (a
# count beyond that fails the whole batch of rows it is written with).
MAX_COUNT = 10**9


def sane_count(n: int | None) -> int | None:
    """A count a backend reported, below 0 (a bug) read as 0 and beyond
    MAX_COUNT (a size_t that underflowed) as MAX_COUNT."""
    return n if n is None or 0 <= n <= MAX_COUNT else min(max(n, 0), MAX_COUNT)


def counted(usage: Usage | None) -> Usage | None:
    """The usage as coderouterd counts it (metrics, spend, the request log),
    each count sane (sane_count). The client's answer keeps the counts as
    the backend sent them."""
    if usage is None:
        return None
    counts = {k: getattr(usage, k) for k in COUNTS}
    sane = {k: sane_count(n) for k, n in counts.items()}
    return usage if sane == counts else msgspec.structs.replace(usage, **sane)


class _WithUsage(msgspec.Struct):
    usage: Usage | None = None


# Lax: a count sent as 12.0 is read as 12.
_decoder = msgspec.json.Decoder(_WithUsage, strict=False)


def usage_of_body(body: bytes) -> Usage | None:
    try:
        return _decoder.decode(body).usage
    except msgspec.DecodeError:
        return None


def hour_writes(usage: Usage) -> int:
    """The cache writes reported as 1-hour ones, at most all of them."""
    split = usage.cache_creation
    hour = split.get("ephemeral_1h_input_tokens") if isinstance(split, dict) else None
    if not isinstance(hour, int) or isinstance(hour, bool) or hour < 0:
        return 0
    return min(hour, usage.cache_creation_input_tokens or 0)


def merged_split(known: Any, update: Any) -> Any:
    """A later cache_creation split over an earlier one: each count the larger
    (counts are cumulative), anything that is no count as the later sent it."""
    if not isinstance(update, dict):
        return known if update is None else update
    out = dict(known) if isinstance(known, dict) else {}
    for key, value in update.items():
        before = out.get(key)
        if not (isinstance(value, int) and isinstance(before, int) and before > value):
            out[key] = value
    return out


def is_complete(usage: Usage | None) -> bool:
    """Whether all four counts are there (clients read every one of them)."""
    return usage is not None and all(getattr(usage, k) is not None for k in COUNTS)


def completed(usage: object) -> dict[str, Any]:
    """Anthropic usage with all four counts, a missing or null one as 0;
    any other key kept as it is."""
    given: dict[str, Any] = usage if isinstance(usage, dict) else {}
    return {**given, **{k: given.get(k) or 0 for k in COUNTS}}


def anthropic_counts(
    prompt: int | None, completion: int | None, cached: int | None, written: int | None
) -> Usage:
    """OpenAI usage counts as Anthropic's. OpenAI counts the cached and the
    cache-written tokens inside prompt_tokens, told apart in its details
    (`cached_tokens`; `cache_write_tokens`, which OpenRouter reports and
    coderouterd writes to its own OpenAI clients: response_a2o); Anthropic
    counts input, cache reads and cache writes apart.

    Without either cache count the cache is unknown (None), not zero, so
    the cache outcome says `unknown`; with one, the other is 0 (OpenAI's
    own API reports no cache writes). A server that reports more cache
    tokens than prompt tokens leaves no input at 0: never a negative count.
    """
    reported = cached is not None or written is not None
    read, write = cached or 0, written or 0
    return Usage(
        input_tokens=None if prompt is None else max(prompt - read - write, 0),
        output_tokens=completion,
        cache_creation_input_tokens=write if reported else None,
        cache_read_input_tokens=read if reported else None,
    )


def openai_counts(upstream: object) -> Usage:
    """anthropic_counts of a decoded OpenAI usage object, each count read on
    its own: one not there, or no count (a string, a bool), is None."""
    usage = upstream if isinstance(upstream, Mapping) else {}
    details = usage.get("prompt_tokens_details")
    details = details if isinstance(details, Mapping) else {}
    return anthropic_counts(
        _count(usage.get("prompt_tokens")),
        _count(usage.get("completion_tokens")),
        _count(details.get("cached_tokens")),
        _count(details.get("cache_write_tokens")),
    )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def filled(
    reported: Usage | None, input_tokens: Callable[[], int], output_tokens: Callable[[], int]
) -> tuple[Usage, bool]:
    """(usage, estimated): `reported` when it has its input and output counts;
    else those it lacks from the estimates given, its other counts as
    reported (a cache count it lacks stays unknown). An estimate is asked
    for only when its count is missing."""
    if reported is not None and None not in (reported.input_tokens, reported.output_tokens):
        return reported, False
    known = reported or Usage()
    return msgspec.structs.replace(
        known,
        input_tokens=input_tokens() if known.input_tokens is None else known.input_tokens,
        output_tokens=output_tokens() if known.output_tokens is None else known.output_tokens,
    ), True
