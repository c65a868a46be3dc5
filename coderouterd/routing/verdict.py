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
    """A 4xx (but those above) is the request's fault: it goes back to the
    client. Any other status is the provider's failure, as a 5xx is: a
    redirect, never followed (it could send the key and the prompt to any
    host), or a 1xx taken for the final answer (a protocol switch no one
    asked for). A backend out of memory may say so with any status: another
    fits."""
    if 200 <= status < 300:
        return Verdict.OK
    client_error = 400 <= status < 500 and status not in _RETRYABLE
    if not client_error or error_type == "overloaded_error" or memory_pressure:
        return Verdict.NEXT
    return Verdict.RETURN
