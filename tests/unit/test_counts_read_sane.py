"""Counts a backend reports that no backend can mean, read as coderouterd
counts them: below 0 as 0, beyond MAX_COUNT (a size_t that underflowed)
as MAX_COUNT; and a saving never below 0 whatever it is given (pure)."""

from __future__ import annotations

import pytest

from coderouterd.config.model import CostConfig
from coderouterd.routing.cost import cost_of
from coderouterd.wire.usage import MAX_COUNT, Usage, counted, sane_count

PRICE = CostConfig(input_tokens_per_million=3.0, output_tokens_per_million=15.0)


@pytest.mark.parametrize(
    ("reported", "read"),
    [(None, None), (0, 0), (12, 12), (MAX_COUNT, MAX_COUNT), (-1, 0), (2**64 - 1, MAX_COUNT)],
)
def test_sane_count(reported: int | None, read: int | None) -> None:
    assert sane_count(reported) == read


def test_a_usage_is_counted_with_each_count_sane_and_its_split_as_sent() -> None:
    split = {"ephemeral_1h_input_tokens": 3}
    usage = Usage(
        input_tokens=10,
        output_tokens=-50,
        cache_read_input_tokens=2**64 - 1,
        cache_creation=split,
    )
    assert counted(usage) == Usage(
        input_tokens=10,
        output_tokens=0,
        cache_read_input_tokens=MAX_COUNT,
        cache_creation=split,
    )
    assert usage.output_tokens == -50  # the backend's own is left as it was


def test_a_sane_usage_is_counted_as_it_is() -> None:
    usage = Usage(input_tokens=10, output_tokens=5)
    assert counted(usage) is usage
    assert counted(None) is None


def test_a_negative_cache_read_saves_nothing() -> None:
    assert cost_of(Usage(cache_read_input_tokens=-1000), PRICE).savings_usd == 0
