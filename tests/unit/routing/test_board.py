"""Provider board transitions: logged once going bad, once coming back."""

from __future__ import annotations

from coderouterd.routing.board import ProviderBoard, Transition
from coderouterd.routing.records import AttemptRecord


def rec(outcome: str, reason: str | None = None, status: int | None = None) -> AttemptRecord:
    return AttemptRecord(provider="p", outcome=outcome, reason=reason, status=status)


def test_transitions_only_on_change() -> None:
    board = ProviderBoard()
    seen = [
        board.record(rec("ok"), 1.0),
        board.record(rec("failed", "http_503", 503), 2.0),
        board.record(rec("failed", "connect_error"), 3.0),
        board.record(rec("skipped", "paid_blocked"), 4.0),
        board.record(rec("returned", "http_400", 400), 5.0),
        board.record(rec("ok"), 6.0),
    ]
    assert seen == [
        None,
        Transition("p", "ok", "failing", "http_503"),
        None,
        None,
        # A 4xx handed back says nothing of the provider's health.
        None,
        Transition("p", "failing", "ok", None),
    ]
    state = board.get("p")
    assert state.state == "ok" and state.last_change_wall == 6.0 and state.last_attempt_wall == 6.0


def test_a_client_error_neither_ends_nor_adds_to_a_streak() -> None:
    board = ProviderBoard()
    board.record(rec("failed", "http_503", 503), 1.0)
    board.record(rec("failed", "http_503", 503), 2.0)
    assert board.record(rec("returned", "http_400", 400), 3.0) is None
    state = board.get("p")
    assert (state.state, state.consecutive_failures) == ("failing", 2)
    assert (state.last_outcome, state.last_status, state.last_attempt_wall) == (
        "http_400",
        400,
        3.0,
    )


def test_consecutive_failures_and_first_failure_from_unknown() -> None:
    board = ProviderBoard()
    assert board.record(rec("failed", "connect_error"), 1.0) == Transition(
        "p", "unknown", "failing", "connect_error"
    )
    board.record(rec("failed", "connect_error"), 2.0)
    assert board.get("p").consecutive_failures == 2
    assert board.get("other").state == "unknown"
