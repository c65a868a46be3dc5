"""What to do after an attempt (pure): try the next provider, or answer the client."""

from __future__ import annotations

import enum

# Statuses that say "this provider cannot serve now" rather than "this
# request is wrong": another provider may well succeed.
_RETRYABLE = frozenset({408, 409, 429})


class Verdict(enum.Enum):
    OK = "ok"
    NEXT = "next"
    RETURN = "return"


def classify_status(
    status: int, error_type: str | None = None, *, memory_pressure: bool = False
) -> Verdict:
    """A backend out of memory may say so with any status: another fits.
    A redirect is never followed (it could send the key and the prompt to
    any host): the provider failed, as one answering 5xx does."""
    if 200 <= status < 300:
        return Verdict.OK
    if status in _RETRYABLE or status >= 500 or error_type == "overloaded_error":
        return Verdict.NEXT
    if 300 <= status < 400:
        return Verdict.NEXT
    return Verdict.NEXT if memory_pressure else Verdict.RETURN
