"""What the engine reports: one record per attempt, one summary per request.

Observers (log line, provider board, state writer) receive these values and
nothing else, so telemetry never depends on log text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

import msgspec

from coderouterd.telemetry import events
from coderouterd.telemetry.logging import get_logger
from coderouterd.translate.types import Degradation
from coderouterd.wire.usage import Usage


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    # "ok", "failed", "returned" (an error status handed to the client),
    # "refused" (the request could not be written for this provider: the
    # client's error), "too_long" (the prompt does not fit its context
    # window: the next provider is tried, no failure counted), "interrupted"
    # or "skipped" (by the plan, or "busy": every slot taken, tried after the rest).
    outcome: str
    reason: str | None = None
    # Free text for operators (exception name, upstream error type); never parsed.
    detail: str | None = None
    status: int | None = None
    ttfb_ms: float | None = None
    latency_ms: float | None = None
    # How long it waited for a slot of the provider (max_concurrent) before
    # it began; None when it did not wait. Not part of its ttfb or latency.
    queued_ms: float | None = None
    # A "too_long" attempt: the backend's context window and its count of
    # the prompt's tokens, when it said them.
    context_window: int | None = None
    prompt_tokens: int | None = None
    # A failed attempt whose answer asked for a wait (Retry-After), in seconds.
    retry_after_s: float | None = None
    # The model it was sent to (its provider's `model`); None when skipped.
    model: str | None = None
    # The prompt estimated as it was sent to this provider (without the
    # tools, when it cannot call them: RequestSummary.prompt_estimate is
    # the answering provider's); None when it was sent nothing (skipped,
    # refused). A window it refused the prompt by is learned on this.
    prompt_estimate: int | None = None


class RequestSummary(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    dialect: str
    profile: str
    requested_model: str | None
    provider: str | None
    attempts: tuple[AttemptRecord, ...]
    status: int
    stream: bool
    ttfb_ms: float | None
    total_ms: float
    usage: Usage | None
    # True when the provider reported no usage and it was estimated from sizes.
    usage_estimated: bool = False
    # Tool calls lifted out of the model's text into tool_use blocks.
    repairs: int = 0
    # What the answer did, as the client got it (routing/shape.py): why the
    # model stopped (Anthropic's words) and whether it called a tool; None
    # without an answer. And whether the request offered tools at all.
    stop_reason: str | None = None
    tool_use: bool | None = None
    tools_offered: bool = False
    # The client's prompt (system, messages, tools) estimated in tokens at
    # four bytes each (translate/estimate.py): what a backend that counts
    # far fewer has cut. Of it, `prompt_image_tokens` for its inline images
    # (`prompt_images` of them).
    prompt_estimate: int = 0
    prompt_images: int = 0
    prompt_image_tokens: int = 0
    error: str | None = None
    client_disconnected: bool = False


class Observer(Protocol):
    def waiting_for_slot(self, request_id: str, providers: Sequence[str]) -> None: ...

    def attempt_started(self, request_id: str, provider: str) -> None: ...

    def attempt_finished(self, request_id: str, record: AttemptRecord) -> None: ...

    def request_finished(self, summary: RequestSummary) -> None: ...

    def degraded(
        self, request_id: str, provider: str, degradations: Sequence[Degradation]
    ) -> None: ...


class BaseObserver:
    """No-op implementations: an observer overrides only the reports it uses."""

    def waiting_for_slot(self, request_id: str, providers: Sequence[str]) -> None:
        pass

    def attempt_started(self, request_id: str, provider: str) -> None:
        pass

    def attempt_finished(self, request_id: str, record: AttemptRecord) -> None:
        pass

    def request_finished(self, summary: RequestSummary) -> None:
        pass

    def degraded(self, request_id: str, provider: str, degradations: Sequence[Degradation]) -> None:
        pass


class Observers:
    """Fans each report out to every observer, in order.

    Each is on its own: one that raises (a bug, a log line it could not
    write) loses its own report, logged with its name, never the routing
    that reported it or the observers after it.
    """

    def __init__(self, observers: list[Observer], log: Any = None) -> None:
        self._observers = observers
        self._log = log if log is not None else get_logger()

    def waiting_for_slot(self, request_id: str, providers: Sequence[str]) -> None:
        for o in self._observers:
            try:
                o.waiting_for_slot(request_id, providers)
            except Exception as exc:
                self._failed(o, "waiting_for_slot", exc)

    def attempt_started(self, request_id: str, provider: str) -> None:
        for o in self._observers:
            try:
                o.attempt_started(request_id, provider)
            except Exception as exc:
                self._failed(o, "attempt_started", exc)

    def attempt_finished(self, request_id: str, record: AttemptRecord) -> None:
        for o in self._observers:
            try:
                o.attempt_finished(request_id, record)
            except Exception as exc:
                self._failed(o, "attempt_finished", exc)

    def request_finished(self, summary: RequestSummary) -> None:
        for o in self._observers:
            try:
                o.request_finished(summary)
            except Exception as exc:
                self._failed(o, "request_finished", exc)

    def degraded(self, request_id: str, provider: str, degradations: Sequence[Degradation]) -> None:
        for o in self._observers:
            try:
                o.degraded(request_id, provider, degradations)
            except Exception as exc:
                self._failed(o, "degraded", exc)

    def _failed(self, observer: Observer, report: str, exc: Exception) -> None:
        # The log may be what failed: its own failure is not raised either.
        with contextlib.suppress(Exception):
            self._log.error(
                events.TELEMETRY_OBSERVER_FAILED,
                observer=type(observer).__name__,
                report=report,
                error=repr(exc),
                exc_info=exc,
            )
