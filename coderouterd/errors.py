"""The exception tree of coderouterd.

    CoderouterError
    ├── ConfigError                 the config file has problems (all of them listed)
    ├── RequestError                the client's request cannot be served as sent
    │   ├── InvalidRequestError     a field is missing or of the wrong shape (400)
    │   │   └── UntranslatableRequestError  not for one provider's dialect or
    │   │                           model (the next is tried)
    │   ├── UnknownProfileError     the chosen profile does not exist (400)
    │   ├── BodyTooLargeError       the body is over server.max_body_bytes (413)
    │   └── BodyTimeoutError        the body did not arrive within server.body_timeout_s (408)
    ├── UpstreamError               one attempt at one provider failed
    │   ├── UpstreamConnectError    no connection could be made
    │   ├── UpstreamTimeoutError    a deadline passed (connect / first_byte / idle / total)
    │   ├── UpstreamStatusError     the provider answered with an error status
    │   └── UpstreamProtocolError   the provider's stream was malformed or cut short
    ├── NoProviderAvailableError    every attempt of a plan failed or was skipped
    └── ClientDisconnectedError     the client went away while we were answering

Foreign exceptions (aiohttp, OSError, asyncio timeouts) are mapped into this
tree once, in the provider adapters; nothing else catches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coderouterd.wire.overflow import Overflow


class CoderouterError(Exception):
    """Base of every error coderouterd raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(CoderouterError):
    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RequestError(CoderouterError):
    status = 400

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        self.message = message
        self.field = field
        # A machine-readable cause where Anthropic's API has one for the same
        # refusal (`error.details.error_code`, which its SDK raises a class
        # of its own for; OpenAI's envelope: `code`).
        self.code = code
        super().__init__(f"{field}: {message}" if field else message)


class InvalidRequestError(RequestError):
    pass


class UntranslatableRequestError(InvalidRequestError):
    """Raised by a translator where the refusal depends on the backend it
    writes for (a history that leaves it no user message it can read), not
    on the request alone: another provider of the chain may take it."""


# A JSON value too deeply nested to decode is the client's error too.
NESTED_TOO_DEEP = "is nested too deeply to be read"


class UnknownProfileError(RequestError):
    pass


class BodyTooLargeError(RequestError):
    status = 413


class BodyTimeoutError(RequestError):
    status = 408


# An attempt's reason when the backend said it ran out of memory.
MEMORY_PRESSURE = "memory_pressure"
# An attempt's reason when the backend said the prompt does not fit its window.
CONTEXT_EXCEEDED = "context_exceeded"


class UpstreamError(CoderouterError):
    """One attempt failed. `reason` is a short machine-readable tag for logs and headers."""

    reason = "upstream_error"

    def __init__(self, provider: str, detail: str = "") -> None:
        self.provider = provider
        self.detail = detail
        super().__init__(f"{provider}: {self.reason}" + (f" ({detail})" if detail else ""))


class UpstreamConnectError(UpstreamError):
    reason = "connect_error"


class UpstreamTimeoutError(UpstreamError):
    def __init__(self, provider: str, phase: str) -> None:
        self.phase = phase
        super().__init__(provider)

    @property
    def reason(self) -> str:  # type: ignore[override]
        return f"timeout_{self.phase}"


class UpstreamStatusError(UpstreamError):
    def __init__(
        self,
        provider: str,
        status: int,
        body: bytes,
        content_type: str,
        error_type: str | None,
        *,
        memory_pressure: bool = False,
        overflow: Overflow | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.status = status
        # How long the upstream asked to be left alone (its Retry-After).
        self.retry_after_s = retry_after_s
        self.body = body
        self.content_type = content_type
        self.error_type = error_type
        # The body says the backend ran out of memory (wire/errors.py).
        self.memory_pressure = memory_pressure
        # The body says the prompt does not fit the backend's window (wire/overflow.py).
        self.overflow = overflow
        redirect = 300 <= status < 400
        super().__init__(provider, error_type or ("redirect not followed" if redirect else ""))

    @property
    def reason(self) -> str:  # type: ignore[override]
        if self.memory_pressure:
            return MEMORY_PRESSURE
        return CONTEXT_EXCEEDED if self.overflow is not None else f"http_{self.status}"


class UpstreamProtocolError(UpstreamError):
    reason = "protocol_error"


class UpstreamMemoryError(UpstreamError):
    """A stream's error event, before any content, said the backend ran out of memory."""

    reason = MEMORY_PRESSURE


@dataclass(frozen=True, slots=True)
class AttemptFailure:
    provider: str
    reason: str
    status: int | None = None
    retry_after_s: float | None = None
    # False for a provider passed over without a request: skipped by the
    # plan, busy, or its request could not be written (refused).
    attempted: bool = True


class NoProviderAvailableError(CoderouterError):
    def __init__(self, profile: str, attempts: Sequence[AttemptFailure]) -> None:
        self.profile = profile
        self.attempts = tuple(attempts)
        summary = "; ".join(f"{a.provider}: {a.reason}" for a in self.attempts) or "none configured"
        super().__init__(f"no provider of profile {profile!r} could serve the request ({summary})")

    @property
    def status(self) -> int:
        return 429 if self.all_rate_limited else 503

    @property
    def retry_after_s(self) -> float | None:
        """When every provider is rate-limited: the soonest any of them said it
        would take a request again, if any said."""
        if not self.all_rate_limited:
            return None
        waits = [a.retry_after_s for a in self._last_words() if a.retry_after_s is not None]
        return min(waits, default=None)

    @property
    def all_rate_limited(self) -> bool:
        """Whether every provider that was sent the request last answered 429.
        Those never sent it (skipped by the plan: a spent budget, a missing
        key) say nothing of when to try again; one passed over as busy and
        then tried counts by how that try ended."""
        last = self._last_words()
        return bool(last) and all(a.status == 429 for a in last)

    def _last_words(self) -> list[AttemptFailure]:
        """Each provider's last attempt, of those that were attempted."""
        return list({a.provider: a for a in self.attempts if a.attempted}.values())


class ClientDisconnectedError(CoderouterError):
    """Raised by response writers when the client's connection is gone."""


class ListenError(CoderouterError):
    """The HTTP port cannot be bound; the daemon does not start."""
