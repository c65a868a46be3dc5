"""Token usage as the Anthropic wire reports it, and reading it from a whole body."""

from __future__ import annotations

from typing import Any

import msgspec


class CacheWrites(msgspec.Struct, kw_only=True):
    """Cache writes split by how long the entry lives (`cache_control.ttl`):
    a 1-hour write is billed higher than a 5-minute one."""

    ephemeral_5m_input_tokens: int | None = None
    ephemeral_1h_input_tokens: int | None = None


class Usage(msgspec.Struct, kw_only=True):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    # Present when the provider splits cache_creation_input_tokens by ttl.
    cache_creation: CacheWrites | None = None


# The counts every answer carries; cache_creation is an optional detail.
COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)


class _WithUsage(msgspec.Struct):
    usage: Usage | None = None


# Lax: a count sent as 12.0 is read as 12.
_decoder = msgspec.json.Decoder(_WithUsage, strict=False)


def usage_of_body(body: bytes) -> Usage | None:
    try:
        return _decoder.decode(body).usage
    except msgspec.DecodeError:
        return None


def is_complete(usage: Usage | None) -> bool:
    """Whether all four counts are there (clients read every one of them)."""
    return usage is not None and all(getattr(usage, k) is not None for k in COUNTS)


def completed(usage: object) -> dict[str, Any]:
    """Anthropic usage with all four counts, a missing or null one as 0;
    any other key kept as it is."""
    given: dict[str, Any] = usage if isinstance(usage, dict) else {}
    return {**given, **{k: given.get(k) or 0 for k in COUNTS}}
