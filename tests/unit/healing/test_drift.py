"""Quality drift: the verdict on a provider's last outcomes, and the watch that keeps them."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from coderouterd.config import load_config_text
from coderouterd.errors import ConfigError
from coderouterd.healing.drift import ERROR, PRESETS, Outcome, judge
from coderouterd.healing.drift_watch import DriftWatch
from coderouterd.routing.records import AttemptRecord, RequestSummary
from coderouterd.state.reads import Answer
from coderouterd.telemetry.logging import get_logger
from coderouterd.wire.usage import Usage

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
    watch = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger())
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
    watch = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger())
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
    watch = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger())
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
    watch = DriftWatch(load_config_text(CONFIG, file="c.yaml"), get_logger())
    watch.take([summary(tokens=0)] * 6)
    assert watch.flagged == {"local": "severe"}
    watch.reconfigure(load_config_text(CONFIG.replace("demote", "off"), file="c.yaml"))
    assert watch.flagged == {} and watch.verdict("local") is None
