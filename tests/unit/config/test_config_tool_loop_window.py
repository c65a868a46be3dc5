"""A tool-loop threshold past its window is told at a line the file holds:
the threshold's when it is written, else the window's (the threshold is its
default 3); a window already wrong on its own is not compared."""

from __future__ import annotations

import pytest

from coderouterd.config import load_config_text
from tests.unit.config.test_load import MINIMAL, problems_of


def with_profile(*lines: str) -> str:
    """MINIMAL with `lines` added to its profile, from line 8 on."""
    return MINIMAL + "".join(f"    {line}\n" for line in lines)


def test_a_window_below_the_default_threshold_is_told_at_the_window() -> None:
    [problem] = problems_of(with_profile("tool_loop_window: 2"))
    assert (problem.line, problem.path) == (8, "profiles[0].tool_loop_window")
    assert "tool_loop_threshold (3, its default)" in problem.message


def test_a_threshold_above_the_default_window_is_told_at_the_threshold() -> None:
    [problem] = problems_of(with_profile("tool_loop_threshold: 8"))
    assert (problem.line, problem.path) == (8, "profiles[0].tool_loop_threshold")
    assert "tool_loop_window (5)" in problem.message


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("true", "expected an integer, got a boolean"),
        ("1", "must be >= 2 (got 1)"),
        ("0", "must be >= 2 (got 0)"),
    ],
)
def test_a_window_wrong_on_its_own_is_named_once(window: str, message: str) -> None:
    [problem] = problems_of(with_profile(f"tool_loop_window: {window}"))
    assert (problem.line, problem.path, problem.message) == (
        8,
        "profiles[0].tool_loop_window",
        message,
    )


def test_a_window_that_holds_the_threshold_is_taken() -> None:
    config = load_config_text(
        with_profile("tool_loop_window: 2", "tool_loop_threshold: 2"), file="c"
    )
    assert (config.profiles[0].tool_loop_window, config.profiles[0].tool_loop_threshold) == (2, 2)
