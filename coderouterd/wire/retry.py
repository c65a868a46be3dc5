"""How long an upstream asks to be left alone: its Retry-After (pure)."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping

# A day: longer is a broken header, not advice.
_MOST_S = 86_400.0


def retry_after_s(headers: Mapping[str, str], now_wall: float) -> float | None:
    """Seconds from `now_wall` an answer's `retry-after-ms` or `retry-after`
    (seconds, or an HTTP date) asks the client to wait; None when it names
    no wait that makes sense."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        seconds = _number(ms)
        if seconds is not None:
            return _sane(seconds / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return _sane(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _sane(when.timestamp() - now_wall) if when.tzinfo is not None else None


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _sane(seconds: float) -> float | None:
    return min(seconds, _MOST_S) if seconds >= 0 else None
