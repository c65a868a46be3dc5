"""What self-healing records through the state service (service.py).

`provider_excluded`, `provider_restored` and `restart_command_ran`: an
`exclusions` row change goes to the writer as one record with its audit
event, committed or lost together and never dropped for overload. Logging
the same events is the caller's part.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coderouterd.clock import Clock
from coderouterd.state.records import AuditEvent, ExclusionCleared, ExclusionSet, RowChange
from coderouterd.state.writer import Writer
from coderouterd.telemetry import events


class HealingAudit:
    """The self-healing half of StateService, which gives it `writer` and `_clock`."""

    writer: Writer
    _clock: Clock

    def provider_excluded(
        self,
        provider: str,
        *,
        reason: str,
        consecutive_failures: int,
        threshold: int,
        last_reason: str | None,
        last_status: int | None,
        episode: int,
        until: float | None = None,
        uid: int | None = None,
        since: float | None = None,
    ) -> None:
        """Take a provider out of rotation: its `exclusions` row with its audit
        event; `since`: when it was decided (default now)."""
        now = self._clock.wall() if since is None else since
        change = ExclusionSet(provider=provider, reason=reason, since=now, until=until)
        fields = {
            "provider": provider,
            "reason": reason,
            "consecutive_failures": consecutive_failures,
            "threshold": threshold,
            "last_reason": last_reason,
            "last_status": last_status,
            "episode": episode,
        }
        self._audit_at(now, events.PROVIDER_EXCLUDED, fields, change=change, until=until, uid=uid)

    def provider_restored(
        self,
        provider: str,
        *,
        via: str,
        excluded_for_s: float,
        probes_failed: int,
        episode: int,
        latency_ms: float | None = None,
        uid: int | None = None,
    ) -> None:
        """Put a provider back: its `exclusions` row goes, with its audit event."""
        now = self._clock.wall()
        fields = {
            "provider": provider,
            "via": via,
            "excluded_for_s": excluded_for_s,
            "probes_failed": probes_failed,
            "episode": episode,
        }
        change = ExclusionCleared(provider=provider)
        self._audit_at(
            now, events.PROVIDER_RESTORED, fields, change=change, latency_ms=latency_ms, uid=uid
        )

    def restart_command_ran(
        self,
        provider: str,
        *,
        argv: Sequence[str],
        exit_status: int | None,
        signal: int | None,
        timed_out: bool,
        duration_ms: float,
        output_tail: str,
        output_truncated: bool,
        episode: int,
        error: str | None = None,
        log: str | None = None,
    ) -> None:
        """Audit one run of a provider's restart_command (no row changes);
        `error`: why it could not be started; `log`: the file its output went to."""
        fields = {
            "provider": provider,
            "argv": list(argv),
            "exit_status": exit_status,
            "signal": signal,
            "timed_out": timed_out,
            "duration_ms": duration_ms,
            "output_tail": output_tail,
            "output_truncated": output_truncated,
            "episode": episode,
        }
        self._audit_at(
            self._clock.wall(), events.PROVIDER_RESTART_COMMAND, fields, error=error, log=log
        )

    def _audit_at(
        self,
        now: float,
        event: str,
        fields: dict[str, Any],
        *,
        change: RowChange | None = None,
        **optional: Any,
    ) -> None:
        # Optional fields appear only when known, so a row says what happened.
        fields.update((k, v) for k, v in optional.items() if v is not None)
        self.writer.submit(AuditEvent(ts=now, event=event, fields=fields, change=change))
