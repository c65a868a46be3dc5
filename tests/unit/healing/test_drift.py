"""Quality drift: the verdict on a provider's last outcomes, and the watch that keeps them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from structlog.testing import capture_logs

from coderouterd.config import load_config_text
from coderouterd.errors import ConfigError
from coderouterd.healing.drift import ERROR, PRESETS, RETRY_S, Outcome, judge
from coderouterd.healing.drift_watch import DriftWatch
from coderouterd.routing.records import AttemptRecord, RequestSummary
from coderouterd.state.reads import Answer
from coderouterd.telemetry.logging import get_logger
from coderouterd.wire.usage import Usage
from tests.integration.state.support_db import ManualClock

NORMAL = PRESETS["normal"]


def answer(tokens: int | None = 100, stop: str | None = "end_turn", **kw: Any) -> Outcome:
    return Outcome(output_tokens=tokens, stop_reason=stop, **kw)


def test_nothing_is_judged_before_the_window_fills() -> None:
    verdict = judge([answer(0)] * 5, NORMAL)
    assert (verdict.severity, verdict.signals) == ("none", {})


def test_a_healthy_window() -> None:
    window = [answer(n, tool_use=n % 2 == 0, tools_offered=True) for n in range(60, 80)]
    verdict = judge(window, NORMAL)
    assert verdict.severity == "none" and verdict.reason == ""
    assert verdict.signals["empty_response_rate"] == 0.0
    assert verdict.signals["tool_silence_rate"] == 0.5
    assert set(verdict.signals) == {
        "empty_response_rate",
        "length_collapse_ratio",
        "tool_silence_rate",
        "stop_anomaly_rate",
        "error_rate",
    }


def test_empty_answers_are_severe() -> None:
    verdict = judge([answer(80)] * 6 + [answer(0)] * 4, NORMAL)
    assert verdict.severity == "severe"
    assert verdict.reason.startswith("empty_response_rate=0.40")


def test_answers_that_shrink_are_severe() -> None:
    verdict = judge([answer(80)] * 5 + [answer(10)] * 5, NORMAL)
    assert verdict.severity == "severe"
    assert verdict.reason == "length_collapse=0.12 (recent_median=10, earlier=80)"
    assert verdict.signals["length_collapse_ratio"] == 0.125


def test_a_model_that_stops_calling_its_tools_is_mild() -> None:
    window = [answer(tools_offered=True, tool_use=False)] * 8 + [
        answer(tools_offered=True, tool_use=True)
    ] * 2
    verdict = judge(window, NORMAL)
    assert (verdict.severity, verdict.reason) == ("mild", "tool_silence_rate=0.80")


def test_two_mild_signals_are_severe() -> None:
    window = [answer(stop=None)] * 5 + [answer()] * 2 + [ERROR] * 3
    verdict = judge(window, NORMAL)
    assert verdict.severity == "severe"
    assert verdict.reason == "stop_anomaly_rate=0.71, error_rate=0.30"


def test_sensitivity_moves_the_thresholds() -> None:
    window = [answer()] * 7 + [ERROR] * 3
    assert judge(window, PRESETS["low"]).severity == "none"
    assert judge(window, NORMAL).severity == "mild"
    assert judge(window, PRESETS["high"]).severity == "mild"


def test_unknown_output_tokens_say_nothing_of_length() -> None:
    verdict = judge([answer(None)] * 10, NORMAL)
    assert verdict.severity == "none"
    assert "empty_response_rate" not in verdict.signals
    assert "length_collapse_ratio" not in verdict.signals


# --- the watch

CONFIG = """\
providers:
  - {name: local, base_url: "http://127.0.0.1:1/v1", model: m}
  - {name: cloud, base_url: "http://127.0.0.1:2/v1", model: m}
profiles:
  - {name: main, providers: [local], drift_action: demote}
  - {name: other, providers: [cloud], drift_action: off}
drift: {window: 10}
"""


def summary(provider: str = "local", tokens: int = 80, **kw: Any) -> RequestSummary:
    fields: dict[str, Any] = {
        "request_id": "r",
        "dialect": "anthropic",
        "profile": "main",
        "requested_model": "m",
        "provider": provider,
        "attempts": (AttemptRecord(provider=provider, outcome="ok", status=200),),
        "status": 200,
        "stream": False,
        "ttfb_ms": 1.0,
        "total_ms": 2.0,
        "usage": Usage(output_tokens=tokens),
        "stop_reason": "end_turn",
        "tool_use": False,
        **kw,
    }
    return RequestSummary(**fields)


def test_the_watch_logs_a_drift_once_and_its_end() -> None:
    watch = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), ManualClock())
    with capture_logs() as logs:
        watch.take([summary(tokens=0)] * 6)
        assert watch.flagged == {"local": "severe"}
        watch.take([summary()] * 10)
    drifts = [(e["event"], e["previous"]) for e in logs]
    assert drifts == [("provider.drift", "none"), ("provider.drift_cleared", "severe")]
    assert logs[0]["severity"] == "severe" and logs[0]["log_level"] == "warning"
    assert watch.flagged == {}
    verdict = watch.verdict("local")
    assert verdict is not None and verdict[1] == 10


def test_the_watch_counts_failures_and_skips_what_is_not_an_answer() -> None:
    watch = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), ManualClock())
    failed = AttemptRecord(provider="local", outcome="failed", reason="http_503")
    returned = AttemptRecord(provider="local", outcome="returned", status=400)
    watch.take(
        [
            # local failed, then cloud answered: an error for local only.
            summary(
                provider="cloud", attempts=(failed, AttemptRecord(provider="cloud", outcome="ok"))
            ),
            summary(attempts=(returned,), status=400),
            summary(client_disconnected=True),
        ]
    )
    judged = watch.verdict("local")
    assert judged is not None and judged[1] == 1
    assert watch.verdict("cloud") is None  # only an `off` profile lists it


def test_start_up_refills_the_windows_and_reload_resizes_them() -> None:
    watch = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), ManualClock())
    empty = Answer(output_tokens=0, stop_reason="end_turn", tool_use=False, tools_offered=False)
    with capture_logs() as logs:
        watch.load({"local": [empty] * 8, "gone": [empty]})
    assert [(e["event"], e.get("restored")) for e in logs] == [("provider.drift", True)]
    assert watch.flagged == {"local": "severe"}
    # Watched by both profiles now, and a smaller window keeps the newest.
    watch.reconfigure(
        load_config_text(
            CONFIG.replace("drift_action: off", "drift_action: warn").replace(
                "{window: 10}", "{window: 10, sensitivity: low}"
            ),
            file="c.yaml",
        )
    )
    assert watch.watched == ("cloud", "local")
    assert watch.flagged == {}  # 8 outcomes are fewer than `low` judges


@pytest.mark.parametrize("window", ["9", "201"])
def test_the_window_is_bounded(window: str) -> None:
    with pytest.raises(ConfigError):
        load_config_text(CONFIG.replace("{window: 10}", f"{{window: {window}}}"), file="c.yaml")


def test_a_provider_no_longer_watched_is_no_longer_flagged() -> None:
    watch = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), ManualClock())
    watch.take([summary(tokens=0)] * 6)
    assert watch.flagged == {"local": "severe"}
    watch.reconfigure(load_config_text(CONFIG.replace("demote", "off"), file="c.yaml"))
    assert watch.flagged == {} and watch.verdict("local") is None


def test_a_demoted_provider_is_tried_in_its_place_again_and_a_good_answer_clears_it() -> None:
    clock = ManualClock()
    watch = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), clock)
    watch.take([summary(tokens=0)] * 6)
    assert watch.demoted() == {"local"}
    assert watch.demoted_for("local") == RETRY_S
    # Fallback traffic that answers well renews nothing; a bad answer does.
    clock.advance(RETRY_S - 10)
    watch.take([summary()])
    assert watch.flagged == {"local": "severe"} and watch.demoted_for("local") == 10
    watch.take([summary(tokens=0)])
    assert watch.demoted_for("local") == RETRY_S
    # Its time is up: tried in its place; a bad answer there keeps it last.
    clock.advance(RETRY_S)
    assert watch.demoted() == frozenset()
    watch.take([summary(attempts=(AttemptRecord(provider="local", outcome="failed"),))])
    assert watch.demoted() == {"local"}
    clock.advance(RETRY_S)
    with capture_logs() as logs:
        watch.take([summary()])
    assert [(e["event"], e.get("retried")) for e in logs] == [("provider.drift_cleared", True)]
    assert watch.flagged == {} and watch.demoted() == frozenset()
    judged = watch.verdict("local")
    assert judged is not None and judged[1] == 1  # the old outcomes are set aside


def test_only_a_demote_profile_retries_and_restore_forgets_the_drift() -> None:
    clock = ManualClock()
    warn = load_config_text(CONFIG.replace("demote", "warn"), file="c.yaml")
    watch = DriftWatch(warn, get_logger(), clock)
    watch.take([summary(tokens=0)] * 6)
    clock.advance(RETRY_S * 2)
    watch.take([summary()])
    # Warned, not demoted: it keeps its traffic, so its window tells.
    assert watch.flagged == {"local": "severe"} and watch.demoted() == frozenset()
    with capture_logs() as logs:
        assert watch.forget("local") is True
    assert [(e["event"], e.get("manual")) for e in logs] == [("provider.drift_cleared", True)]
    assert watch.flagged == {} and watch.forget("local") is False
    assert watch.forget("cloud") is False  # not watched


def test_a_restart_keeps_what_is_left_of_the_demotion() -> None:
    clock = ManualClock()
    watch = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), clock)
    now = clock.wall()
    empty = Answer(output_tokens=0, stop_reason="end_turn", tool_use=False, tools_offered=False)
    good = Answer(output_tokens=50, stop_reason="end_turn", tool_use=False, tools_offered=False)
    watch.load(
        {
            "local": [msgspec.structs.replace(empty, ts=now - 300)] * 7
            + [msgspec.structs.replace(good, ts=now - 60)]
        }
    )
    # 300 s since the last bad outcome: 300 s left.
    assert watch.demoted_for("local") == RETRY_S - 300
    later = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger(), clock)
    later.load({"local": [msgspec.structs.replace(empty, ts=now - RETRY_S - 1)] * 7})
    assert later.flagged == {"local": "severe"} and later.demoted() == frozenset()
