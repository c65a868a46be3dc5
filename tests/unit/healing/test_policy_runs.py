"""Restart runs, busy providers, returned probes and exclusions loaded at start
(pure; time is an argument)."""

from __future__ import annotations

from collections.abc import Iterator

from coderouterd.config.load import load_config_text
from coderouterd.config.model import Config
from coderouterd.healing.decisions import Exclude, Probe, RestartSkipped, Restore
from coderouterd.healing.policy import HealingBook


def config(*, with_a: bool = True, jitter: float = 0.5, healing: str = "") -> Config:
    a = (
        '  - {name: a, base_url: "http://127.0.0.1:1", model: m, restart_command: [restart, a]}\n'
        if with_a
        else ""
    )
    chain = "[a, b]" if with_a else "[b]"
    return load_config_text(
        f"""
self_healing: {{recovery_jitter: {jitter}, recovery_initial_interval_s: 30, restart_min_interval_s: 600{healing}}}
providers:
{a}  - {{name: b, base_url: "http://127.0.0.1:2", model: m}}
profiles:
  - {{name: p, providers: {chain}, backend_health_action: exclude, backend_health_threshold: 2}}
  - {{name: cool, providers: {chain}, memory_pressure_action: skip, memory_pressure_cooldown_s: 100}}
""",
        file="runs.yaml",
    )


def fail(book: HealingBook, at: float, reason: str = "http_503") -> list:
    out = []
    for i in range(4):
        out += book.observe(
            "a", outcome="failed", reason=reason, status=503, now_mono=at + i, now_wall=1e9
        )
    return out


def test_a_restart_that_ends_during_a_cooldown_gives_it_no_probe() -> None:
    book = HealingBook.for_config(config(), now_mono=0.0)
    fail(book, 0.0)  # excluded, episode 1; its restart runs
    book.observe("a", outcome="ok", reason=None, status=200, now_mono=5.0, now_wall=1e9)
    oom = book.observe(
        "a", outcome="failed", reason="memory_pressure", status=500, now_mono=6.0, now_wall=1e9
    )
    assert isinstance(oom[-1], Exclude) and oom[-1].reason == "memory_pressure"

    book.restart_finished("a", 1, now_mono=10.0, u=0.5)

    ex = book.health("a").excluded
    assert ex is not None and ex.next_probe is None
    # The cooldown's end, and nothing before it.
    assert book.next_due() == 106.0
    assert book.due(105.0) == []


def test_the_first_probe_after_a_restart_is_jittered() -> None:
    book = HealingBook.for_config(config(), now_mono=0.0)
    fail(book, 0.0)

    book.restart_finished("a", 1, now_mono=10.0, u=0.0)

    # 30 s less half of it (recovery_jitter 0.5, u 0).
    assert book.next_due() == 25.0


def test_a_provider_a_reload_takes_out_and_puts_back_keeps_its_running_restart() -> None:
    book = HealingBook.for_config(config(), now_mono=0.0)
    fail(book, 0.0)  # episode 1: its restart runs

    removed = book.configure(config(with_a=False), now_mono=5.0)
    book.configure(config(), now_mono=6.0)
    again = fail(book, 10.0)  # episode 2

    assert [type(d) for d in removed] == [Restore]
    assert book.health("a").restarting
    assert again[1:] == [RestartSkipped("a", "running", None, 2)]
    # The end of the run of episode 1, and of no other, ends `restarting`.
    book.restart_finished("a", 2, now_mono=20.0, u=0.5)
    assert book.health("a").restarting
    book.restart_finished("a", 1, now_mono=20.0, u=0.5)
    assert not book.health("a").restarting
    assert book.due(50.0) == [Probe("a", 2)]


def test_a_restart_that_ends_while_its_provider_is_out_of_the_config_is_noted() -> None:
    book = HealingBook.for_config(config(), now_mono=0.0)
    fail(book, 0.0)
    book.configure(config(with_a=False), now_mono=5.0)

    book.restart_finished("a", 1, now_mono=8.0, u=0.5)
    book.configure(config(), now_mono=9.0)
    again = fail(book, 10.0)

    assert not book.health("a").restarting
    # Not again within restart_min_interval_s of the last run.
    assert again[1:] == [RestartSkipped("a", "too_soon", 590.0, 2)]


def watched() -> HealingBook:
    return HealingBook.for_config(
        config(jitter=0, healing=", continuous_probe_interval_s: 10"), now_mono=0.0
    )


def test_a_provider_answering_an_attempt_is_not_probed_continuously() -> None:
    book = watched()
    assert book.next_due() == 10.0

    book.attempt_started("a")
    book.attempt_started("a")

    assert book.due(100.0) == [Probe("b", 0)]
    assert book.attempt_ended("a") is False
    assert book.due(200.0) == []
    assert book.attempt_ended("a") is True
    book.observe("a", outcome="ok", reason=None, status=200, now_mono=300.0, now_wall=1e9)
    assert book.due(309.0) == []
    assert book.due(310.0) == [Probe("a", 0)]


def test_a_continuous_probe_answered_with_a_4xx_to_hand_back_adds_to_no_streak() -> None:
    book = watched()
    for n in range(8):
        [_, probe] = sorted(book.due(10.0 * (n + 1) + n), key=lambda p: p.provider != "b")
        assert probe == Probe("a", 0)
        out = book.probe_finished(
            "a",
            0,
            ok=True,
            latency_ms=1.0,
            now_mono=10.0 * (n + 1) + n,
            now_wall=1e9,
            u=0.5,
            reason="status_400",
            status=400,
            returned=True,
        )
        assert out == []
        book.probe_finished(
            "b", 0, ok=True, latency_ms=1.0, now_mono=10.0 * (n + 1) + n, now_wall=1e9, u=0.5
        )

    assert book.excluded() == frozenset()
    assert book.health("a").streak == 0


def test_a_recovery_probe_answered_with_a_4xx_to_hand_back_restores() -> None:
    book = HealingBook.for_config(config(jitter=0), now_mono=0.0)
    fail(book, 0.0)
    book.restart_finished("a", 1, now_mono=10.0, u=0.5)
    [probe] = book.due(40.0)

    out = book.probe_finished(
        "a",
        probe.episode,
        ok=True,
        latency_ms=2.0,
        now_mono=41.0,
        now_wall=1e9,
        u=0.5,
        reason="status_400",
        status=400,
        returned=True,
    )

    assert out == [Restore("a", "probe", 38.0, 0, 1, 2.0)]


def draws(*values: float) -> Iterator[float]:
    yield from values


def test_each_exclusion_loaded_at_start_has_a_probe_time_of_its_own() -> None:
    c = config()
    book = HealingBook.for_config(c, now_mono=0.0)
    u = draws(0.0, 1.0)

    book.load(
        [("a", "unhealthy", 900.0, None), ("b", "unhealthy", 900.0, None)],
        now_mono=50.0,
        now_wall=1000.0,
        rand=lambda: next(u),
    )

    # Within 5 s, each +-50 %.
    assert book.health("a").excluded.next_probe == 52.5  # type: ignore[union-attr]
    assert book.health("b").excluded.next_probe == 57.5  # type: ignore[union-attr]


def test_exclusions_loaded_at_start_keep_their_audited_episode_and_new_ones_follow() -> None:
    book = HealingBook.for_config(config(with_a=False), now_mono=0.0)
    book.load_episodes(7)

    restored = book.load(
        [("a", "unhealthy", 900.0, None), ("b", "unhealthy", 950.0, None)],
        now_mono=50.0,
        now_wall=1000.0,
        rand=lambda: 0.5,
        episodes={"a": 5},
    )

    assert restored == [Restore("a", "config_removed", 100.0, 0, 5)]
    # No audited episode for b: a new number, after every audited one.
    assert book.health("b").excluded.episode == 8  # type: ignore[union-attr]
    out = book.exclude_manual("b", now_mono=60.0, now_wall=1010.0)
    assert [d.episode for d in out] == [9]  # type: ignore[union-attr]
