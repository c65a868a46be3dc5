"""Each observer of the engine's reports on its own: one that raises (a
bug, a log line it could not write) loses its own report, never the
routing that reported it or the observers after it."""

from __future__ import annotations

from collections.abc import Sequence

from structlog.testing import capture_logs

from coderouterd.routing.records import (
    AttemptRecord,
    BaseObserver,
    Observer,
    Observers,
    RequestSummary,
)
from coderouterd.translate.types import Degradation

RECORD = AttemptRecord(provider="a", outcome="failed", reason="http_503", status=503)
SUMMARY = RequestSummary(
    request_id="r",
    dialect="anthropic",
    profile="p",
    requested_model=None,
    provider="b",
    attempts=(RECORD,),
    status=200,
    stream=False,
    ttfb_ms=None,
    total_ms=1.0,
    usage=None,
)


class Broken(BaseObserver):
    def waiting_for_slot(self, request_id: str, providers: Sequence[str]) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def attempt_started(self, request_id: str, provider: str) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def attempt_finished(self, request_id: str, record: AttemptRecord) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def request_finished(self, summary: RequestSummary) -> None:
        raise ValueError("bug")

    def degraded(self, request_id: str, provider: str, degradations: Sequence[Degradation]) -> None:
        raise ValueError("bug")


class Heard(BaseObserver):
    def __init__(self) -> None:
        self.reports: list[str] = []

    def waiting_for_slot(self, request_id: str, providers: Sequence[str]) -> None:
        self.reports.append("waiting_for_slot")

    def attempt_started(self, request_id: str, provider: str) -> None:
        self.reports.append("attempt_started")

    def attempt_finished(self, request_id: str, record: AttemptRecord) -> None:
        self.reports.append("attempt_finished")

    def request_finished(self, summary: RequestSummary) -> None:
        self.reports.append("request_finished")

    def degraded(self, request_id: str, provider: str, degradations: Sequence[Degradation]) -> None:
        self.reports.append("degraded")


def test_an_observer_that_raises_costs_no_other_observer_its_report() -> None:
    heard = Heard()
    observers: list[Observer] = [Broken(), heard]
    fan_out = Observers(observers)
    with capture_logs() as logs:
        fan_out.waiting_for_slot("r", ["a"])
        fan_out.attempt_started("r", "a")
        fan_out.attempt_finished("r", RECORD)
        fan_out.degraded("r", "a", [Degradation("content.x", "x blocks have no equivalent")])
        fan_out.request_finished(SUMMARY)
    reports = [
        "waiting_for_slot",
        "attempt_started",
        "attempt_finished",
        "degraded",
        "request_finished",
    ]
    assert heard.reports == reports
    assert [(e["event"], e["observer"], e["report"]) for e in logs] == [
        ("telemetry.observer_failed", "Broken", report) for report in reports
    ]
