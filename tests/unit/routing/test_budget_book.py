"""The budget book: spend only grows, and thresholds are passed by spend or
by a new budget under the spend already made."""

from __future__ import annotations

import pytest

from coderouterd.routing.budget import BudgetBook, passed

MONTH = "2026-11"


def test_a_negative_amount_is_refused_and_leaves_the_spend_as_it_was() -> None:
    book = BudgetBook({("cloud", MONTH): 5.0})
    with pytest.raises(ValueError, match="negative spend"):
        book.add("cloud", MONTH, -90.0, 10.0)
    assert book.spent("cloud", MONTH) == 5.0
    assert book.add("cloud", MONTH, 0.0, 10.0) == []


@pytest.mark.parametrize(
    ("spent", "budget", "thresholds"),
    [
        (0.0, 10.0, []),
        (7.9, 10.0, []),
        (8.0, 10.0, [80]),
        (10.0, 10.0, [80, 100]),
        (3.0, None, []),
        # A budget of 0 is passed by any spend, and by no spend at all.
        (0.0, 0.0, []),
        (0.01, 0.0, [80, 100]),
    ],
)
def test_thresholds_passed(spent: float, budget: float | None, thresholds: list[int]) -> None:
    assert passed(spent, budget) == thresholds


def test_spend_under_a_zero_budget_crosses_both_thresholds() -> None:
    """An answer that began before the budget was set to 0 finishes after."""
    book = BudgetBook()
    assert book.add("cloud", MONTH, 2.0, 0.0) == [80, 100]
    assert book.add("cloud", MONTH, 2.0, 0.0) == []


@pytest.mark.parametrize(
    ("old", "new", "crossed"),
    [
        (100.0, 10.0, [80, 100]),
        (100.0, 22.0, [80]),
        (22.0, 10.0, [100]),
        (None, 10.0, [80, 100]),
        (10.0, 10.0, []),
        (10.0, 100.0, []),
        (10.0, None, []),
    ],
)
def test_a_new_budget_crosses_what_the_spend_passes_under_it_alone(
    old: float | None, new: float | None, crossed: list[int]
) -> None:
    book = BudgetBook({("cloud", MONTH): 20.0})
    assert book.rebudgeted("cloud", MONTH, old, new) == crossed
    assert book.rebudgeted("other", MONTH, old, new) == []
