"""The self-healing book: exclusion, probes, restarts, restoration (pure; time is an argument)."""

from __future__ import annotations

import pytest

from coderouterd.config.load import load_config_text
from coderouterd.config.model import Config, SelfHealingConfig
from coderouterd.healing.decisions import (
    Exclude,
    MemoryPressure,
    Probe,
    Restart,
    RestartSkipped,
    Restore,
    describe,
    next_probe_delay,
)
from coderouterd.healing.policy import HealingBook


def config(
    *,
    action: str = "exclude",
    threshold: int = 3,
    restart: str = "",
    healing: str = "",
    second_profile: str = "",
) -> Config:
    return load_config_text(
        f"""
providers:
  - {{name: a, base_url: "http://127.0.0.1:1", model: m{restart}}}
  - {{name: b, base_url: "http://127.0.0.1:2", model: m}}
profiles:
  - {{name: p, providers: [a, b], backend_health_action: {action}, backend_health_threshold: {threshold}}}
{second_profile}
{healing}
""",
        file="test.yaml",
    )


def fail(
    book: HealingBook, n: int, *, at: float = 0.0, step: float = 1.0, provider: str = "a"
) -> list:
    out = []
    for i in range(n):
        now = at + i * step
        out += book.observe(
            provider,
            outcome="failed",
            reason="http_503",
            status=503,
            now_mono=now,
            now_wall=1e9 + now,
        )
    return out


def test_a_provider_is_excluded_at_twice_the_threshold() -> None:
    book = HealingBook.for_config(config(threshold=3))

    assert fail(book, 5) == []
    assert book.excluded() == frozenset()
    decisions = fail(book, 1, at=5.0)

    assert decisions == [Exclude("a", "unhealthy", 6, 3, "http_503", 503, 1, 1e9 + 5)]
    assert book.excluded() == {"a"}


def test_the_smallest_threshold_among_exclude_and_demote_profiles_wins() -> None:
    c = config(
        threshold=5,
        second_profile="  - {name: q, providers: [a], backend_health_action: exclude, backend_health_threshold: 2}\n"
        "  - {name: r, providers: [b], backend_health_action: demote, backend_health_threshold: 4}\n"
        "  - {name: s, providers: [b], backend_health_action: warn, backend_health_threshold: 2}",
    )
    book = HealingBook.for_config(c)

    assert book.threshold("a") == 2
    # b is in an `exclude` profile (p, 5) too; s's `warn` threshold does not count.
    assert book.threshold("b") == 4
    assert [type(d) for d in fail(book, 4)] == [Exclude]


def test_a_demote_profile_alone_excludes_what_it_then_tries_last() -> None:
    book = HealingBook.for_config(config(action="demote", threshold=2))

    assert [type(d) for d in fail(book, 4)] == [Exclude]
    assert book.excluded() == {"a"}


@pytest.mark.parametrize("action", ["warn", "off"])
def test_warn_and_off_profiles_never_exclude(action: str) -> None:
    book = HealingBook.for_config(config(action=action, threshold=2))

    assert fail(book, 50) == []
    assert book.threshold("a") is None


def test_a_success_or_an_old_failure_restarts_the_streak() -> None:
    book = HealingBook.for_config(
        config(threshold=2, healing="self_healing: {failure_window_s: 60}")
    )
    fail(book, 3)
    book.observe("a", outcome="ok", reason=None, status=200, now_mono=3.0, now_wall=1e9)
    assert fail(book, 3, at=4.0) == []
    # The 4th failure comes 61 s after the 3rd: a new streak of 1.
    assert fail(book, 1, at=67.0) == []
    assert book.health("a").streak == 1
    assert [type(d) for d in fail(book, 3, at=68.0)] == [Exclude]


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("returned", 400),
        ("refused", None),
        ("interrupted", None),
        ("skipped", None),
        ("failed", 401),
        ("failed", 403),
    ],
)
def test_attempts_that_say_nothing_of_health_do_not_count(outcome: str, status: int | None) -> None:
    book = HealingBook.for_config(config(threshold=2))
    for i in range(10):
        assert (
            book.observe("a", outcome=outcome, reason=None, status=status, now_mono=i, now_wall=i)
            == []
        )
    assert book.health("a").streak == 0


def test_probe_delays_double_to_the_cap_within_jitter() -> None:
    s = SelfHealingConfig(
        recovery_initial_interval_s=30, recovery_max_interval_s=300, recovery_jitter=0.1
    )

    assert [next_probe_delay(n, s, 0.5) for n in range(7)] == [30, 60, 120, 240, 300, 300, 300]
    assert next_probe_delay(0, s, 0.0) == pytest.approx(27.0)
    assert next_probe_delay(5, s, 0.9999) == pytest.approx(330.0, abs=0.01)


def test_an_excluded_provider_is_probed_until_a_probe_succeeds() -> None:
    book = HealingBook.for_config(config(threshold=2, healing="self_healing: {recovery_jitter: 0}"))
    fail(book, 4)  # excluded at t=3

    assert book.next_due() == 33.0
    assert book.due(32.9) == []
    assert book.due(33.0) == [Probe("a", 1)]
    # One probe in flight at a time.
    assert book.due(40.0) == []
    assert book.next_due() is None
    failed = book.probe_finished(
        "a", 1, ok=False, latency_ms=None, now_mono=40.0, now_wall=1e9, u=0.5
    )
    assert failed == []
    assert book.next_due() == 100.0  # the second probe comes 60 s later
    assert book.due(100.0) == [Probe("a", 1)]
    restored = book.probe_finished(
        "a", 1, ok=True, latency_ms=12.5, now_mono=101.0, now_wall=1e9, u=0.5
    )

    assert restored == [Restore("a", "probe", 98.0, 1, 1, 12.5)]
    assert book.excluded() == frozenset()
    assert book.health("a").streak == 0
    assert book.next_due() is None


def test_a_request_that_gets_through_restores_an_excluded_provider() -> None:
    book = HealingBook.for_config(config(threshold=2))
    fail(book, 4)

    decisions = book.observe(
        "a", outcome="ok", reason=None, status=200, now_mono=10.0, now_wall=1e9
    )

    assert decisions == [Restore("a", "request", 7.0, 0, 1)]


def test_the_result_of_an_earlier_episode_is_ignored() -> None:
    book = HealingBook.for_config(config(threshold=2, healing="self_healing: {recovery_jitter: 0}"))
    fail(book, 4)
    [probe] = book.due(100.0)
    book.observe("a", outcome="ok", reason=None, status=200, now_mono=101.0, now_wall=1e9)
    fail(book, 4, at=102.0)  # excluded again: episode 2

    stale = book.probe_finished(
        "a", probe.episode, ok=True, latency_ms=1.0, now_mono=106.0, now_wall=1e9, u=0.5
    )

    assert stale == []
    assert book.excluded() == {"a"}


def test_a_restart_runs_once_per_exclusion_and_not_again_too_soon() -> None:
    book = HealingBook.for_config(
        config(
            threshold=2,
            restart=", restart_command: [systemctl, restart, a], restart_timeout_s: 7",
            healing="self_healing: {restart_min_interval_s: 600, recovery_jitter: 0}",
        )
    )
    first = fail(book, 4)

    assert first[1:] == [Restart("a", ("systemctl", "restart", "a"), 7.0, 1)]
    # No probe while the command runs; the first one an initial interval after it.
    assert book.due(1000.0) == []
    assert book.next_due() is None
    book.restart_finished("a", 1, now_mono=20.0, u=0.5)
    assert book.next_due() == 50.0
    assert book.health("a").restarts == 1
    [probe] = book.due(50.0)
    book.probe_finished(
        "a", probe.episode, ok=True, latency_ms=1.0, now_mono=51.0, now_wall=1e9, u=0.5
    )

    again = fail(book, 4, at=100.0)

    assert again[1:] == [RestartSkipped("a", "too_soon", 500.0, 2)]
    # Without a restart, the first probe is an initial interval after the exclusion.
    assert book.next_due() == 133.0


def test_a_restart_still_running_is_not_started_twice() -> None:
    book = HealingBook.for_config(
        config(
            threshold=2,
            restart=", restart_command: [x]",
            healing="self_healing: {restart_min_interval_s: 0}",
        )
    )
    fail(book, 4)
    book.observe("a", outcome="ok", reason=None, status=200, now_mono=5.0, now_wall=1e9)

    again = fail(book, 4, at=6.0)

    assert again[1:] == [RestartSkipped("a", "running", None, 2)]
    # The new exclusion waits for the running restart, then is probed.
    assert book.next_due() is None
    book.restart_finished("a", 1, now_mono=20.0, u=0.5)
    assert book.next_due() == 50.0
    assert book.due(50.0) == [Probe("a", 2)]


def test_exclusions_stored_before_a_restart_are_kept_probed_soon_and_not_restarted() -> None:
    book = HealingBook.for_config(
        config(
            threshold=2,
            restart=", restart_command: [x]",
            healing="self_healing: {recovery_jitter: 0}",
        )
    )

    decisions = book.load(
        [("a", "unhealthy", 1000.0, None), ("gone", "unhealthy", 1100.0, None)],
        now_mono=50.0,
        now_wall=1300.0,
        rand=lambda: 0.5,
    )

    assert decisions == [Restore("gone", "config_removed", 200.0, 0, 2)]
    assert book.excluded() == {"a"}
    ex = book.health("a").excluded
    assert ex is not None
    assert ex.since_wall == 1000.0
    assert book.next_due() == 55.0
    [probe] = book.due(55.0)
    restored = book.probe_finished(
        "a", probe.episode, ok=True, latency_ms=3.0, now_mono=56.0, now_wall=1306.0, u=0.5
    )
    # Excluded for the time before the restart too.
    assert restored == [Restore("a", "probe", 306.0, 0, 1, 3.0)]


def test_a_reload_that_removes_an_excluded_provider_restores_it() -> None:
    book = HealingBook.for_config(config(threshold=2))
    fail(book, 4)
    smaller = load_config_text(
        "providers:\n  - {name: b, base_url: 'http://127.0.0.1:2', model: m}\n"
        "profiles:\n  - {name: p, providers: [b]}\n",
        file="t.yaml",
    )

    decisions = book.configure(smaller, now_mono=10.0)

    assert decisions == [Restore("a", "config_removed", 7.0, 0, 1)]
    assert book.excluded() == frozenset()


def watched_config(interval: str = "continuous_probe_interval_s: 60") -> Config:
    return load_config_text(
        f"""
self_healing: {{recovery_jitter: 0, {interval}}}
providers:
  - {{name: a, base_url: "http://127.0.0.1:1", model: m}}
  - {{name: cloud, base_url: "http://127.0.0.1:2", model: m, paid: true}}
profiles:
  - {{name: p, providers: [a, cloud], backend_health_action: exclude, backend_health_threshold: 2, allow_paid: true}}
""",
        file="watched.yaml",
    )


def test_continuous_probes_are_off_by_default() -> None:
    book = HealingBook.for_config(watched_config(interval=""), now_mono=100.0)

    assert book.next_due() is None
    assert book.due(1e9) == []


def test_providers_in_service_are_probed_after_an_interval_without_attempts() -> None:
    book = HealingBook.for_config(watched_config(), now_mono=100.0)

    # Paid providers are never probed while in service (each probe costs).
    assert book.next_due() == 160.0
    assert book.due(159.0) == []
    book.observe("a", outcome="returned", reason=None, status=400, now_mono=150.0, now_wall=1e9)
    assert book.due(160.0) == []
    assert book.next_due() == 210.0
    assert book.due(210.0) == [Probe("a", 0)]
    assert book.next_due() is None  # one probe in flight
    ok = book.probe_finished("a", 0, ok=True, latency_ms=5.0, now_mono=211.0, now_wall=1e9, u=0.5)
    assert ok == []
    assert book.next_due() == 271.0
    assert book.health("a").last_probe_ok is True


def test_failed_continuous_probes_exclude_like_failed_attempts() -> None:
    book = HealingBook.for_config(watched_config(), now_mono=0.0)
    decisions: list = []
    now = 0.0
    for _ in range(4):
        now = book.next_due() or 0.0
        [probe] = book.due(now)
        assert probe == Probe("a", 0)
        decisions += book.probe_finished(
            "a",
            0,
            ok=False,
            latency_ms=None,
            now_mono=now,
            now_wall=1e9 + now,
            u=0.5,
            reason="connect_error",
        )

    assert decisions == [Exclude("a", "unhealthy", 4, 2, "connect_error", None, 1, 1e9 + 240)]
    # From now on its probes are recovery probes of the exclusion.
    assert book.next_due() == now + 30
    assert book.due(now + 30) == [Probe("a", 1)]


def test_a_continuous_probe_whose_key_is_rejected_does_not_count() -> None:
    book = HealingBook.for_config(watched_config(), now_mono=0.0)
    for i in range(10):
        [probe] = book.due(60.0 * (i + 1))
        book.probe_finished(
            "a",
            probe.episode,
            ok=False,
            latency_ms=1.0,
            now_mono=60.0 * (i + 1),
            now_wall=1e9,
            u=0.5,
            reason="auth_rejected",
            status=401,
        )
    assert book.excluded() == frozenset()
    assert book.health("a").streak == 0


def test_a_manual_exclusion_is_never_probed_nor_lifted_by_a_request() -> None:
    book = HealingBook.for_config(watched_config(), now_mono=0.0)

    [excluded] = book.exclude_manual("a", now_mono=1.0, now_wall=1e9)

    assert (excluded.provider, excluded.reason, excluded.threshold) == ("a", "manual", 2)
    assert book.manual() == {"a"}
    assert book.excluded() == frozenset()  # that set is for the profiles' actions
    assert book.next_due() is None
    assert book.due(1e6) == []
    assert (
        book.observe("a", outcome="ok", reason=None, status=200, now_mono=2.0, now_wall=1e9) == []
    )
    assert book.exclude_manual("a", now_mono=3.0, now_wall=1e9) == []
    assert book.restore_manual("a", now_mono=11.0) == [Restore("a", "manual", 10.0, 0, 1)]
    assert book.manual() == frozenset()
    assert book.restore_manual("a", now_mono=12.0) == []


def test_an_unhealthy_exclusion_taken_over_by_hand_stops_being_probed() -> None:
    book = HealingBook.for_config(config(threshold=2, healing="self_healing: {recovery_jitter: 0}"))
    fail(book, 4)
    [probe] = book.due(100.0)

    [manual] = book.exclude_manual("a", now_mono=101.0, now_wall=1e9)

    assert manual.episode == 2
    assert book.manual() == {"a"} and book.excluded() == frozenset()
    late = book.probe_finished(
        "a", probe.episode, ok=True, latency_ms=1.0, now_mono=102.0, now_wall=1e9, u=0.5
    )
    assert late == []
    assert book.manual() == {"a"}
    assert book.next_due() is None


def test_manual_actions_on_an_unknown_provider_raise_key_error() -> None:
    book = HealingBook.for_config(config())
    with pytest.raises(KeyError):
        book.exclude_manual("nope", now_mono=0.0, now_wall=0.0)
    with pytest.raises(KeyError):
        book.restore_manual("nope", now_mono=0.0)


def test_a_manual_exclusion_stored_before_a_restart_stays_unprobed() -> None:
    book = HealingBook.for_config(config())

    assert (
        book.load([("a", "manual", 100.0, None)], now_mono=5.0, now_wall=200.0, rand=lambda: 0.5)
        == []
    )

    assert book.manual() == {"a"}
    assert book.next_due() is None


def pressure_config(*, action: str = "skip", cooldown: int = 120, health: str = "warn") -> Config:
    return load_config_text(
        f"""
providers:
  - {{name: a, base_url: "http://127.0.0.1:1", model: m}}
  - {{name: b, base_url: "http://127.0.0.1:2", model: m}}
profiles:
  - {{name: p, providers: [a, b], memory_pressure_action: {action}, memory_pressure_cooldown_s: {cooldown}, backend_health_action: {health}, backend_health_threshold: 2}}
  - {{name: q, providers: [a], memory_pressure_action: warn, memory_pressure_cooldown_s: 3600}}
""",
        file="pressure.yaml",
    )


def oom(book: HealingBook, at: float, provider: str = "a") -> list:
    return book.observe(
        provider,
        outcome="failed",
        reason="memory_pressure",
        status=500,
        now_mono=at,
        now_wall=1e9 + at,
    )


def test_a_provider_out_of_memory_cools_down_in_skip_profiles_then_comes_back() -> None:
    book = HealingBook.for_config(pressure_config(cooldown=120), now_mono=0.0)

    decisions = oom(book, 10.0)

    # q only warns: the cooldown is p's.
    assert decisions == [
        MemoryPressure("a", 500, 120.0),
        Exclude("a", "memory_pressure", 1, None, "memory_pressure", 500, 1, 1e9 + 10, 1e9 + 130),
    ]
    assert book.cooling() == {"a"}
    assert book.excluded() == frozenset() and book.manual() == frozenset()
    # No probe: the cooldown ends by itself.
    assert book.next_due() == 130.0
    assert book.due(129.9) == []
    assert book.due(130.0) == [Restore("a", "expired", 120.0, 0, 1)]
    assert book.cooling() == frozenset()


def test_memory_pressure_is_only_logged_where_no_profile_skips_and_ignored_when_all_are_off() -> (
    None
):
    warned = HealingBook.for_config(pressure_config(action="warn"))
    assert oom(warned, 1.0) == [MemoryPressure("a", 500, None)]
    assert warned.cooling() == frozenset()

    silent = HealingBook.for_config(pressure_config(action="off"))
    assert oom(silent, 1.0, provider="b") == []


def test_a_cooldown_gives_way_to_an_exclusion_as_unhealthy() -> None:
    book = HealingBook.for_config(pressure_config(health="exclude", cooldown=600), now_mono=0.0)
    oom(book, 1.0)
    assert book.cooling() == {"a"}
    # `q` still sends a requests; they keep failing the same way.
    for at in (2.0, 3.0):
        oom(book, at)
    decisions = oom(book, 4.0)

    assert [type(d) for d in decisions] == [MemoryPressure, Exclude]
    assert decisions[1].reason == "unhealthy"
    assert book.excluded() == {"a"} and book.cooling() == frozenset()


def test_a_request_that_gets_through_ends_a_cooldown() -> None:
    book = HealingBook.for_config(pressure_config(), now_mono=0.0)
    oom(book, 1.0)

    restored = book.observe("a", outcome="ok", reason=None, status=200, now_mono=5.0, now_wall=1e9)

    assert restored == [Restore("a", "request", 4.0, 0, 1)]


def test_a_cooldown_stored_before_a_restart_keeps_what_is_left_of_it() -> None:
    book = HealingBook.for_config(pressure_config(), now_mono=0.0)

    decisions = book.load(
        [("a", "memory_pressure", 900.0, 1100.0), ("b", "memory_pressure", 800.0, 950.0)],
        now_mono=50.0,
        now_wall=1000.0,
        rand=lambda: 0.5,
    )

    assert decisions == [Restore("b", "expired", 200.0, 0, 2)]
    assert book.cooling() == {"a"}
    assert book.next_due() == 150.0
    assert book.due(150.0) == [Restore("a", "expired", 200.0, 0, 1)]


def test_a_probe_by_hand_restores_only_what_self_healing_excluded() -> None:
    book = HealingBook.for_config(config(threshold=2, healing="self_healing: {recovery_jitter: 0}"))
    fail(book, 4)
    due = book.next_due()

    assert book.probed_by_hand("a", ok=False, latency_ms=3.0, now_mono=10.0, now_wall=1e9) == []
    # Its own probes keep their schedule.
    assert book.next_due() == due
    assert book.health("a").last_probe_ok is False
    assert book.probed_by_hand("a", ok=True, latency_ms=3.0, now_mono=11.0, now_wall=1e9) == [
        Restore("a", "probe", 8.0, 0, 1, 3.0)
    ]
    book.exclude_manual("b", now_mono=12.0, now_wall=1e9)
    assert book.probed_by_hand("b", ok=True, latency_ms=1.0, now_mono=13.0, now_wall=1e9) == []
    assert book.manual() == {"b"}
    with pytest.raises(KeyError):
        book.probed_by_hand("nope", ok=True, latency_ms=1.0, now_mono=14.0, now_wall=1e9)


def test_describe_says_what_happens_to_each_provider() -> None:
    c = config(
        threshold=4,
        restart=", restart_command: [systemctl, --user, restart, 'my service']",
        second_profile="  - {name: q, providers: [b], memory_pressure_action: skip, memory_pressure_cooldown_s: 30}",
    )
    assert describe(c) == [
        "a: excluded after 8 failed attempts in a row; restart: systemctl --user restart 'my service'",
        "b: excluded after 8 failed attempts in a row; cooled down 30 s when out of memory",
    ]
    assert describe(config(action="warn")) == [
        "a: never taken out automatically",
        "b: never taken out automatically",
    ]
