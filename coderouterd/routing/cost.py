"""What an answer cost, what caching saved, and how the cache behaved (pure)."""

from __future__ import annotations

import datetime
from typing import NamedTuple

from coderouterd.config.model import CostConfig
from coderouterd.wire.usage import Usage, hour_writes

_MILLION = 1_000_000


class AttemptCost(NamedTuple):
    cost_usd: float
    # What the cache reads saved against the plain input price: never
    # negative, so that /metrics can count it (a write's premium is a cost,
    # and is in cost_usd).
    savings_usd: float


def cost_of(usage: Usage, price: CostConfig) -> AttemptCost:
    per_input = price.input_tokens_per_million / _MILLION
    per_output = price.output_tokens_per_million / _MILLION
    read = usage.cache_read_input_tokens or 0
    created = usage.cache_creation_input_tokens or 0
    hour = hour_writes(usage)
    cache_cost = per_input * (
        read * price.cache_read_discount
        + (created - hour) * price.cache_creation_premium
        + hour * price.cache_creation_1h_premium
    )
    cost = (
        (usage.input_tokens or 0) * per_input + (usage.output_tokens or 0) * per_output + cache_cost
    )
    saved = max(read, 0) * per_input * max(0.0, 1 - price.cache_read_discount)
    return AttemptCost(cost, saved)


def cache_outcome(usage: Usage | None, *, estimated: bool) -> str:
    """hit (something was read from the cache), creation (only written), none, or unknown."""
    if usage is None or estimated:
        return "unknown"
    read, created = usage.cache_read_input_tokens, usage.cache_creation_input_tokens
    if read is None and created is None:
        return "unknown"
    if read:
        return "hit"
    if created:
        return "creation"
    return "none"


def month_of(wall: float) -> str:
    """The UTC calendar month of a Unix time, as 'YYYY-MM'."""
    return datetime.datetime.fromtimestamp(wall, datetime.UTC).strftime("%Y-%m")
