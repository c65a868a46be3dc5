"""What self-healing tells: its decisions and restart runs, logged and audited.

Each event goes to the log and, with the same fields, to the audit log
(with its `exclusions` row change: state/service.py). Decided during a
request, a log line carries its request_id (bound in the request's
context).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coderouterd.healing.decisions import Exclude, MemoryPressure, Restart, RestartSkipped, Restore
from coderouterd.healing.restart import RestartOutcome
from coderouterd.state.service import StateService
from coderouterd.telemetry import events


class HealingReport:
    def __init__(self, log: Any, state: StateService | None) -> None:
        self._log = log
        self._state = state

    def excluded(self, d: Exclude, uid: int | None) -> None:
        fields: dict[str, Any] = {
            "provider": d.provider,
            "reason": d.reason,
            "consecutive_failures": d.consecutive_failures,
            "threshold": d.threshold,
            "last_reason": d.last_reason,
            "last_status": d.last_status,
            "episode": d.episode,
        }
        if uid is not None:
            fields["uid"] = uid
        if d.until_wall is not None:
            fields["until"] = d.until_wall
        self._log.warning(events.PROVIDER_EXCLUDED, **fields)
        if self._state is not None:
            self._state.provider_excluded(**fields, since=d.since_wall)

    def restored(self, d: Restore, uid: int | None) -> None:
        fields: dict[str, Any] = {
            "provider": d.provider,
            "via": d.via,
            "excluded_for_s": d.excluded_for_s,
            "probes_failed": d.probes_failed,
            "episode": d.episode,
            "latency_ms": d.latency_ms,
        }
        if uid is not None:
            fields["uid"] = uid
        self._log.info(events.PROVIDER_RESTORED, **fields)
        if self._state is not None:
            self._state.provider_restored(**fields)

    def restart_skipped(self, d: RestartSkipped) -> None:
        self._log.info(
            events.PROVIDER_RESTART_SKIPPED,
            provider=d.provider,
            why=d.why,
            next_allowed_in_s=d.next_allowed_in_s,
            episode=d.episode,
        )

    def memory_pressure(self, d: MemoryPressure) -> None:
        self._log.warning(
            events.PROVIDER_MEMORY_PRESSURE,
            provider=d.provider,
            status=d.status,
            cooldown_s=d.cooldown_s,
        )

    def restart_ran(self, d: Restart, outcome: RestartOutcome, log_path: Path | None) -> None:
        fields: dict[str, Any] = {
            "provider": d.provider,
            "argv": list(d.argv),
            "exit_status": outcome.exit_status,
            "signal": outcome.signal,
            "timed_out": outcome.timed_out,
            "duration_ms": outcome.duration_ms,
            "output_tail": outcome.output_tail,
            "output_truncated": outcome.truncated,
            "episode": d.episode,
            "error": outcome.error,
            "log": None if log_path is None else str(log_path),
        }
        level = self._log.info if outcome.ok else self._log.warning
        level(events.PROVIDER_RESTART_COMMAND, **fields)
        if self._state is not None:
            self._state.restart_command_ran(**fields)
