"""restart_min_interval_s counted from restarts before this start (pure; time is an argument)."""

from __future__ import annotations

from coderouterd.config.load import load_config_text
from coderouterd.config.model import Config
from coderouterd.healing.decisions import Exclude, Restart, RestartSkipped
from coderouterd.healing.policy import HealingBook

NOW_WALL = 1_800_000_000.0


def config() -> Config:
    return load_config_text(
        """
self_healing: {restart_min_interval_s: 600}
providers:
  - {name: a, base_url: "http://127.0.0.1:1", model: m, restart_command: [restart, a]}
  - {name: b, base_url: "http://127.0.0.1:2", model: m}
profiles:
  - {name: p, providers: [a, b], backend_health_action: exclude, backend_health_threshold: 2}
""",
        file="restarts.yaml",
    )


def exclude_a(book: HealingBook, now_mono: float) -> list:
    out = []
    for i in range(4):
        out += book.observe(
            "a",
            outcome="failed",
            reason="http_503",
            status=503,
            now_mono=now_mono + i,
            now_wall=NOW_WALL,
        )
    return out


def test_a_restart_before_this_start_holds_the_next_one_back() -> None:
    book = HealingBook.for_config(config(), now_mono=50.0)
    book.load_restarts({"a": NOW_WALL - 100}, now_mono=50.0, now_wall=NOW_WALL)

    exclude, skipped = exclude_a(book, now_mono=50.0)

    assert isinstance(exclude, Exclude)
    assert skipped == RestartSkipped("a", "too_soon", 497.0, 1)
    assert not book.health("a").restarting


def test_a_restart_longer_ago_than_the_interval_lets_the_next_one_run() -> None:
    book = HealingBook.for_config(config(), now_mono=50.0)
    book.load_restarts({"a": NOW_WALL - 601}, now_mono=50.0, now_wall=NOW_WALL)

    _, restart = exclude_a(book, now_mono=50.0)

    assert restart == Restart("a", ("restart", "a"), 30.0, 1)


def test_a_restart_in_the_future_counts_as_now_and_unknown_providers_are_left_out() -> None:
    """A wall clock set back since: the stored time is no later than now."""
    book = HealingBook.for_config(config(), now_mono=50.0)
    book.load_restarts({"a": NOW_WALL + 3600, "gone": NOW_WALL}, now_mono=50.0, now_wall=NOW_WALL)

    _, skipped = exclude_a(book, now_mono=50.0)

    assert skipped == RestartSkipped("a", "too_soon", 597.0, 1)
    assert book.health("gone").last_restart is None


def test_a_restart_of_this_daemon_after_the_stored_one_is_kept() -> None:
    book = HealingBook.for_config(config(), now_mono=0.0)
    exclude_a(book, now_mono=1000.0)
    assert book.health("a").last_restart == 1003.0

    book.load_restarts({"a": NOW_WALL - 500}, now_mono=1010.0, now_wall=NOW_WALL)

    assert book.health("a").last_restart == 1003.0
