"""`replay list --since`: a duration back from now, or an ISO date (UTC unless it says)."""

from __future__ import annotations

import datetime

import pytest

from coderouterd.cli_state import parse_since
from coderouterd.errors import CoderouterError

NOW = 1_750_000_000.0


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=datetime.UTC).timestamp()


@pytest.mark.parametrize(
    ("text", "since"),
    [
        ("45s", NOW - 45),
        ("30m", NOW - 30 * 60),
        ("12h", NOW - 12 * 3600),
        ("1.5h", NOW - 5400),
        ("7d", NOW - 7 * 86400),
        ("0m", NOW),
        ("2025-06-01", utc(2025, 6, 1)),
        ("2025-06-01T12:30:00", utc(2025, 6, 1, 12, 30)),
        ("2025-06-01T12:30:00+02:00", utc(2025, 6, 1, 10, 30)),
        ("2025-06-01T12:30:00Z", utc(2025, 6, 1, 12, 30)),
    ],
)
def test_since_is_a_duration_back_from_now_or_a_date(text: str, since: float) -> None:
    assert parse_since(text, NOW) == since


@pytest.mark.parametrize("text", ["", "30", "m", "3w", "-5m", "1h30m", "yesterday", "2025-13-01"])
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(CoderouterError, match=r"expected 30m, 12h, 7d or an ISO date"):
        parse_since(text, NOW)
