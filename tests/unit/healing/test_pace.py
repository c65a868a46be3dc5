"""Pace: a provider decoding far slower than it usually does is slow, and
`adaptive` profiles try it later until answers at its usual speed return."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from coderouterd.config import load_config_text
from coderouterd.healing.pace import DEMOTE_S, RECENT, USUAL_MIN, Speeds, decode_rate
from coderouterd.healing.pace_watch import PaceWatch
from coderouterd.routing.plan import Route, plan_attempts
from coderouterd.routing.records import AttemptRecord, RequestSummary
from coderouterd.state.reads import Streamed
from coderouterd.telemetry.logging import get_logger
from coderouterd.wire.usage import Usage
from tests.integration.state.support_db import ManualClock

CONFIG = """
providers:
  - {name: local, base_url: "http://127.0.0.1:1", model: m}
  - {name: cloud, base_url: "http://127.0.0.1:2", model: m}
  - {name: spare, base_url: "http://127.0.0.1:3", model: m}
profiles:
  - {name: fast, providers: [local, cloud, spare], adaptive: true}
  - {name: steady, providers: [local, cloud, spare]}
"""


def test_a_decode_rate_needs_a_long_enough_answer() -> None:
    assert decode_rate(100, 200.0, 1200.0) == pytest.approx(100.0)
    assert decode_rate(31, 200.0, 1200.0) is None  # too few tokens
    assert decode_rate(100, 200.0, 240.0) is None  # decoded too fast to time
    assert decode_rate(None, 200.0, 1200.0) is None


def test_slow_is_the_recent_median_below_the_usual_one_over_one_and_a_half() -> None:
    speeds = Speeds([50.0] * (USUAL_MIN - 1))
    speeds.add(10.0)
    # Too few answers for a usual speed yet... then the last RECENT decide.
    assert Speeds([50.0] * (USUAL_MIN - 1)).pace().slow is False
    assert speeds.pace().slow is False
    for _ in range(RECENT // 2):
        speeds.add(10.0)
    pace = speeds.pace()
    assert (pace.usual, pace.recent, pace.slow) == (50.0, 10.0, True)
    borderline = Speeds([50.0] * USUAL_MIN + [34.0] * RECENT)
    assert borderline.pace().slow is False  # 34 x 1.5 = 51: not below


def summary(provider: str, tokens: int, decode_ms: float, **kw: Any) -> RequestSummary:
    attempt = AttemptRecord(
        provider=provider, outcome="ok", status=200, ttfb_ms=100.0, latency_ms=100.0 + decode_ms
    )
    base: dict[str, Any] = {
        "request_id": "r",
        "dialect": "anthropic",
        "profile": "fast",
        "requested_model": "m",
        "provider": provider,
        "attempts": (attempt,),
        "status": 200,
        "stream": True,
        "ttfb_ms": 100.0,
        "total_ms": 100.0 + decode_ms,
        "usage": Usage(input_tokens=10, output_tokens=tokens),
    }
    return RequestSummary(**{**base, **kw})


def test_the_watch_demotes_a_slow_provider_for_a_while_and_logs_both_ways() -> None:
    clock = ManualClock()
    watch = PaceWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), clock)
    assert watch.watched == ("cloud", "local", "spare")
    with capture_logs() as logs:
        watch.take([summary("local", 100, 1000.0)] * USUAL_MIN)  # 100 tokens/s
        # Not counted: a non-streamed answer, a short one, a client that left.
        watch.take(
            [
                summary("local", 100, 10_000.0, stream=False),
                summary("local", 10, 10_000.0),
                summary("local", 100, 10_000.0, client_disconnected=True),
            ]
        )
        assert watch.demoted() == frozenset()
        watch.take([summary("local", 100, 10_000.0)] * 3)  # 10 tokens/s
        assert watch.demoted() == {"local"}
        clock.advance(DEMOTE_S - 1)
        assert watch.demoted() == {"local"}
        clock.advance(2)
        # Past its time it is tried first again; one more slow answer demotes it again.
        assert watch.demoted() == frozenset()
        watch.take([summary("local", 100, 10_000.0)])
        assert watch.demoted() == {"local"}
        watch.take([summary("local", 100, 1000.0)] * 3)
    assert watch.demoted() == frozenset()
    events = [(e["event"], e["recent_tokens_per_s"]) for e in logs]
    assert events == [("provider.slow", 10.0), ("provider.slow_cleared", 100.0)]


def test_speeds_from_the_request_log_make_a_restart_remember() -> None:
    clock = ManualClock()
    watch = PaceWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), clock)
    # The last answers came 100 s before the restart (for `cloud`, an hour).
    then = clock.wall() - 100

    def rows(seconds: float, n: int, ago: float = 0) -> list[Streamed]:
        return [
            Streamed(ts=then - ago, output_tokens=200, ttfb_ms=50.0, latency_ms=50 + seconds * 1000)
        ] * n

    with capture_logs() as logs:
        watch.load(
            {
                "local": rows(1, USUAL_MIN) + rows(20, RECENT),
                "cloud": rows(1, USUAL_MIN, 3600) + rows(20, RECENT, 3600),
                "spare": [],
                "gone": rows(1, USUAL_MIN),
            }
        )
    assert watch.demoted() == {"local"}
    assert watch.pace("local")[1] == pytest.approx(DEMOTE_S - 100)  # type: ignore[index]
    lines = [(e["provider"], e["restored"], e["demoted_for_s"]) for e in logs]
    assert lines == [("local", True, DEMOTE_S - 100), ("cloud", True, 0.0)]
    assert logs[0]["usual_tokens_per_s"] == 200.0


def test_an_adaptive_profile_tries_a_slow_provider_one_place_later() -> None:
    config = load_config_text(CONFIG, file="c.yaml")

    def order(profile: str, slow: set[str]) -> list[str]:
        return [p.name for p in plan_attempts(config, Route(profile), slow=slow).attempts]

    assert order("fast", {"local"}) == ["cloud", "local", "spare"]
    assert order("fast", {"cloud"}) == ["local", "spare", "cloud"]
    assert order("fast", set()) == ["local", "cloud", "spare"]
    # Without `adaptive` the order stays.
    assert order("steady", {"local"}) == ["local", "cloud", "spare"]


def test_only_a_slow_answer_keeps_a_slow_provider_demoted() -> None:
    clock = ManualClock()
    watch = PaceWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), clock)
    watch.take([summary("local", 100, 1000.0)] * USUAL_MIN)  # 100 tokens/s
    watch.take([summary("local", 100, 10_000.0)] * RECENT)  # 10 tokens/s
    clock.advance(DEMOTE_S / 2)
    # At its usual speed while still demoted: the demotion ends when it would have.
    watch.take([summary("local", 100, 1000.0)])
    assert watch.pace("local")[1] == pytest.approx(DEMOTE_S / 2)  # type: ignore[index]
    clock.advance(DEMOTE_S / 2 + 1)
    assert watch.demoted() == frozenset()
    # Tried first again, and fast again: still slow by its median, not demoted.
    watch.take([summary("local", 100, 1000.0)])
    pace = watch.pace("local")
    assert pace is not None and pace[0].slow and pace[1] is None
    assert watch.demoted() == frozenset()
    # A slow answer demotes it for DEMOTE_S again.
    watch.take([summary("local", 100, 10_000.0)])
    assert watch.pace("local")[1] == pytest.approx(DEMOTE_S)  # type: ignore[index]


def test_a_restart_demotes_for_what_is_left_after_the_last_slow_answer() -> None:
    clock = ManualClock()
    watch = PaceWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), clock)

    def rows(seconds: float, n: int, ended_ago: float) -> list[Streamed]:
        ts = clock.wall() - ended_ago
        return [
            Streamed(ts=ts, output_tokens=200, ttfb_ms=50.0, latency_ms=50 + seconds * 1000)
        ] * n

    # Slow until 500 s before the restart, then one answer at its usual speed.
    watch.load({"local": rows(1, USUAL_MIN, 3000) + rows(20, RECENT, 500) + rows(1, 1, 10)})
    pace = watch.pace("local")
    assert pace is not None and pace[0].slow
    assert pace[1] == pytest.approx(DEMOTE_S - 500)


def test_a_slow_verdict_restored_past_its_demotion_clears_and_pairs_its_logs() -> None:
    clock = ManualClock()
    watch = PaceWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), clock)
    an_hour_ago = clock.wall() - 3600

    def rows(seconds: float, n: int) -> list[Streamed]:
        answer = Streamed(
            ts=an_hour_ago, output_tokens=200, ttfb_ms=50.0, latency_ms=50 + seconds * 1000
        )
        return [answer] * n

    with capture_logs() as logs:
        watch.load({"local": rows(1, USUAL_MIN) + rows(20, RECENT)})
        assert watch.demoted() == frozenset()  # its ten minutes are long over
        watch.take([summary("local", 200, 1000.0)] * RECENT)  # back at 200 tokens/s
        watch.take([summary("local", 200, 20_000.0)] * RECENT)  # slow again
    pace = watch.pace("local")
    assert pace is not None and pace[0].slow and pace[1] == pytest.approx(DEMOTE_S)
    assert [(e["event"], e.get("restored", False), e.get("demoted_for_s")) for e in logs] == [
        ("provider.slow", True, 0.0),
        ("provider.slow_cleared", False, None),
        ("provider.slow", False, DEMOTE_S),
    ]
