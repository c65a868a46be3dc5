"""Cost, cache outcome, month keys and the budget book: tables over pure functions."""

from __future__ import annotations

import datetime

import pytest

from coderouterd.config.model import CostConfig, ProviderConfig
from coderouterd.routing.budget import BudgetBook
from coderouterd.routing.cost import cache_outcome, cost_of, month_of
from coderouterd.wire.usage import Usage

PRICE = CostConfig(input_tokens_per_million=3.0, output_tokens_per_million=15.0)


@pytest.mark.parametrize(
    ("usage", "cost", "savings"),
    [
        (Usage(input_tokens=1_000_000, output_tokens=0), 3.0, 0.0),
        (Usage(input_tokens=0, output_tokens=1_000_000), 15.0, 0.0),
        # A million cache reads at 10 % of the input price save 90 % of it.
        (Usage(input_tokens=0, output_tokens=0, cache_read_input_tokens=1_000_000), 0.30, 2.70),
        # Writing the cache costs 25 % more than plain input: a cost, no saving
        # (a counter of savings must never go down).
        (
            Usage(input_tokens=0, output_tokens=0, cache_creation_input_tokens=1_000_000),
            3.75,
            0.0,
        ),
        (
            Usage(cache_read_input_tokens=1_000_000, cache_creation_input_tokens=1_000_000),
            4.05,
            2.70,
        ),
        (Usage(), 0.0, 0.0),
    ],
)
def test_cost_of(usage: Usage, cost: float, savings: float) -> None:
    got = cost_of(usage, PRICE)
    assert got.cost_usd == pytest.approx(cost)
    assert got.savings_usd == pytest.approx(savings)


@pytest.mark.parametrize(
    ("usage", "estimated", "outcome"),
    [
        (None, False, "unknown"),
        (Usage(input_tokens=5), False, "unknown"),
        (
            Usage(input_tokens=5, cache_read_input_tokens=3, cache_creation_input_tokens=0),
            False,
            "hit",
        ),
        (
            Usage(input_tokens=5, cache_read_input_tokens=0, cache_creation_input_tokens=9),
            False,
            "creation",
        ),
        (
            Usage(input_tokens=5, cache_read_input_tokens=0, cache_creation_input_tokens=0),
            False,
            "none",
        ),
        (Usage(input_tokens=5, cache_read_input_tokens=3), True, "unknown"),
    ],
)
def test_cache_outcome(usage: Usage | None, estimated: bool, outcome: str) -> None:
    assert cache_outcome(usage, estimated=estimated) == outcome


def utc(*args: int) -> float:
    return datetime.datetime(*args, tzinfo=datetime.UTC).timestamp()


@pytest.mark.parametrize(
    ("wall", "month"),
    [
        (utc(2026, 1, 31, 23, 59, 59), "2026-01"),
        (utc(2026, 2, 1, 0, 0, 0), "2026-02"),
        (utc(2026, 12, 31, 23, 59, 59), "2026-12"),
        (utc(2027, 1, 1), "2027-01"),
        (utc(2028, 2, 29, 12), "2028-02"),
    ],
)
def test_month_of_is_the_utc_month(wall: float, month: str) -> None:
    assert month_of(wall) == month


def test_month_rollover_is_exact_to_the_millisecond() -> None:
    midnight = utc(2026, 12, 1)
    assert (month_of(midnight - 0.001), month_of(midnight)) == ("2026-11", "2026-12")


def provider(budget: float | None) -> ProviderConfig:
    cost = CostConfig(monthly_budget_usd=budget)
    return ProviderConfig(name="cloud", base_url="http://127.0.0.1:9", model="m", cost=cost)


def test_budget_thresholds_cross_once_and_exhaust_at_the_budget() -> None:
    book = BudgetBook()
    assert book.add("cloud", "2026-11", 3.0, 5.0) == []
    assert book.add("cloud", "2026-11", 1.0, 5.0) == [80]
    assert not book.exhausted(provider(5.0), "2026-11")
    assert book.add("cloud", "2026-11", 1.0, 5.0) == [100]
    assert book.exhausted(provider(5.0), "2026-11")
    assert book.add("cloud", "2026-11", 1.0, 5.0) == []
    assert book.blocked([provider(5.0)], "2026-11") == {"cloud": "budget_exceeded"}
    # A new month starts from zero by itself.
    assert book.blocked([provider(5.0)], "2026-12") == {}
    assert book.spent("cloud", "2026-11") == pytest.approx(6.0)


def test_one_add_can_cross_both_thresholds_and_no_budget_means_no_thresholds() -> None:
    book = BudgetBook({("cloud", "2026-11"): 1.0})
    assert book.add("cloud", "2026-11", 10.0, 5.0) == [80, 100]
    assert book.add("other", "2026-11", 100.0, None) == []
    assert book.blocked([provider(None)], "2026-11") == {}


def test_spend_that_adds_up_to_the_budget_in_floats_reaches_it() -> None:
    """Ten requests at $0.10 sum to 0.9999999999999999: that is the whole $1
    budget, both thresholds crossed and the provider skipped, as status
    shows it spent."""
    book = BudgetBook()
    crossed = [t for _ in range(10) for t in book.add("cloud", "2026-11", 0.1, 1.0)]
    assert book.spent("cloud", "2026-11") < 1.0
    assert crossed == [80, 100]
    assert book.exhausted(provider(1.0), "2026-11")
