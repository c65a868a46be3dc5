"""Observers that turn engine reports into log lines and provider state."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from coderouterd.clock import Clock
from coderouterd.routing.board import ProviderBoard
from coderouterd.routing.records import AttemptRecord, BaseObserver, RequestSummary
from coderouterd.telemetry import events
from coderouterd.translate.types import Degradation

Audit = Callable[..., None]


class ProviderStateObserver(BaseObserver):
    """Keeps the provider board current and logs each transition once; a
    provider rejecting or again accepting our credentials is also audited."""

    def __init__(
        self, board: ProviderBoard, clock: Clock, log: Any, audit: Audit | None = None
    ) -> None:
        self._board = board
        self._clock = clock
        self._log = log
        self._audit = audit

    def attempt_finished(self, request_id: str, record: AttemptRecord) -> None:
        self._note_auth(request_id, record)
        change = self._board.record(record, self._clock.wall())
        if change is None:
            return
        event = events.PROVIDER_FAILING if change.new == "failing" else events.PROVIDER_RECOVERED
        level = self._log.warning if change.new == "failing" else self._log.info
        level(event, provider=change.provider, previous=change.old, reason=change.reason)

    def request_finished(self, summary: RequestSummary) -> None:
        if summary.provider is not None:
            self._board.count_repairs(summary.provider, summary.repairs)

    def _note_auth(self, request_id: str, record: AttemptRecord) -> None:
        rejected = self._board.auth_change(record)
        if rejected is None:
            return
        if rejected:
            event = events.PROVIDER_AUTH_REJECTED
            fields = {"provider": record.provider, "status": record.status}
            self._log.warning(event, request_id=request_id, **fields)
        else:
            event = events.PROVIDER_AUTH_ACCEPTED
            fields = {"provider": record.provider}
            self._log.info(event, request_id=request_id, **fields)
        if self._audit is not None:
            self._audit(event, request_id=request_id, **fields)


class RequestLogObserver(BaseObserver):
    """Writes the one canonical `request.completed` line per request."""

    def __init__(self, log: Any) -> None:
        self._log = log

    def request_finished(self, summary: RequestSummary) -> None:
        if summary.status < 500 and not self._log.is_enabled_for(logging.INFO):
            return
        fields = msgspec.structs.asdict(summary)
        fields["attempts"] = [
            {k: v for k, v in msgspec.structs.asdict(a).items() if v is not None}
            for a in summary.attempts
        ]
        fields["usage"] = (
            {k: v for k, v in msgspec.structs.asdict(summary.usage).items() if v is not None}
            if summary.usage
            else None
        )
        level = self._log.info if summary.status < 500 else self._log.warning
        level(events.REQUEST_COMPLETED, **fields)

    def degraded(self, request_id: str, provider: str, degradations: Sequence[Degradation]) -> None:
        self._log.info(
            events.CAPABILITY_DEGRADED,
            request_id=request_id,
            provider=provider,
            dropped=[f"{d.field}: {d.reason}" for d in degradations],
        )
