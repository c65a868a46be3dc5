"""Two numbers of one block that must come in order (pure): a tool-loop
threshold within its window, a first probe delay within the cap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from coderouterd.errors import ConfigProblem


class Problems(Protocol):
    problems: list[ConfigProblem]

    def at(self, path: str, message: str) -> None: ...


def check_order(
    block: Mapping[Any, Any],
    path: str,
    low: tuple[str, float],
    high: tuple[str, float],
    *,
    why: str,
    walker: Problems,
) -> None:
    """`low` at most `high`, each a (key, default) of `block`, told at the one
    of the two the file sets (`low` when both); a value the walker has named
    already is not compared."""
    (low_key, low_default), (high_key, high_default) = low, high
    low_value = block.get(low_key, low_default)
    high_value = block.get(high_key, high_default)
    named = {p.path for p in walker.problems}
    for key, value in ((low_key, low_value), (high_key, high_value)):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or f"{path}.{key}" in named:
            return
    if low_value <= high_value:
        return
    if low_key in block:
        walker.at(f"{path}.{low_key}", f"must be at most {high_key} ({high_value:g}): {why}")
    else:
        message = f"must be at least {low_key} ({low_value:g}, its default): {why}"
        walker.at(f"{path}.{high_key}", message)
