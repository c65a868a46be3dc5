"""A first probe delay past the cap is told at a line the file holds: the
first delay's when it is written, else the cap's; a delay already wrong on
its own is not compared (README: `self_healing`)."""

from __future__ import annotations

from coderouterd.config import load_config_text
from tests.unit.config.test_load import MINIMAL, problems_of


def with_healing(*lines: str) -> str:
    """MINIMAL with a self_healing block holding `lines`, from line 9 on."""
    return MINIMAL + "self_healing:\n" + "".join(f"  {line}\n" for line in lines)


def test_a_first_delay_past_the_cap_is_told_at_the_first_delay() -> None:
    [problem] = problems_of(
        with_healing("recovery_initial_interval_s: 60", "recovery_max_interval_s: 30")
    )
    assert (problem.line, problem.path) == (9, "self_healing.recovery_initial_interval_s")
    assert problem.message.startswith("must be at most recovery_max_interval_s (30)")


def test_a_first_delay_past_the_default_cap_is_told_at_the_first_delay() -> None:
    [problem] = problems_of(with_healing("recovery_initial_interval_s: 301"))
    assert (problem.line, problem.path) == (9, "self_healing.recovery_initial_interval_s")
    assert "recovery_max_interval_s (300)" in problem.message


def test_a_cap_under_the_default_first_delay_is_told_at_the_cap() -> None:
    [problem] = problems_of(with_healing("recovery_max_interval_s: 10"))
    assert (problem.line, problem.path) == (9, "self_healing.recovery_max_interval_s")
    assert "recovery_initial_interval_s (30, its default)" in problem.message


def test_a_cap_wrong_on_its_own_is_named_once() -> None:
    [problem] = problems_of(with_healing("recovery_max_interval_s: -1"))
    assert (problem.path, problem.message) == (
        "self_healing.recovery_max_interval_s",
        "must be > 0 (got -1)",
    )


def test_equal_delays_are_taken() -> None:
    config = load_config_text(
        with_healing("recovery_initial_interval_s: 5", "recovery_max_interval_s: 5"), file="c"
    )
    assert config.self_healing.recovery_max_interval_s == 5
