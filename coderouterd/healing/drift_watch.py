"""Drift at work: each provider's window of outcomes, its verdict, its log lines.

`DriftWatch` is one of the engine's observers. A failed attempt and an
answer the client got whole (outcome `ok`, status below 400, the client
still there) go into their provider's window, oldest out; the verdict is
judged again (drift.py) and a change of severity is logged:
`provider.drift` (warning) when it rises or changes, `provider.drift_cleared`
when it ends. Only providers some profile watches (`drift_action` other than
`off`) have a window. At start the windows are refilled with each
provider's last answers from the request log (its failed attempts are not
read back), so a restart neither forgets a drift nor starts one blind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coderouterd.config.model import Config
from coderouterd.healing.drift import (
    ERROR,
    NO_DRIFT,
    PRESETS,
    Outcome,
    Severity,
    Verdict,
    Window,
    judge,
    shown,
)
from coderouterd.routing.records import AttemptRecord, BaseObserver, RequestSummary
from coderouterd.state.reads import Answer
from coderouterd.telemetry import events


class DriftWatch(BaseObserver):
    def __init__(self, config: Config, log: Any) -> None:
        self._log = log
        self._windows: dict[str, Window] = {}
        self._verdicts: dict[str, Verdict] = {}
        # Providers drifting now, and how badly: what routing reads per request.
        self.flagged: Mapping[str, Severity] = {}
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        self._thresholds = PRESETS[config.drift.sensitivity]
        watched = {name for p in config.profiles if p.drift_action != "off" for name in p.providers}
        size = self._size = config.drift.window
        self._windows = {
            name: Window(size, self._windows.get(name, ())) for name in sorted(watched)
        }
        for name in list(self._verdicts):
            if name not in watched:
                del self._verdicts[name]
        for name in watched:
            self._judge(name)

    @property
    def watched(self) -> tuple[str, ...]:
        return tuple(self._windows)

    @property
    def window(self) -> int:
        return self._size

    def load(self, answers: Mapping[str, Sequence[Answer]]) -> None:
        """Start-up: each provider's last answers from the request log, oldest first."""
        for name, rows in answers.items():
            window = self._windows.get(name)
            if window is None:
                continue
            for outcome in (
                Outcome(
                    output_tokens=a.output_tokens,
                    stop_reason=a.stop_reason,
                    tool_use=a.tool_use,
                    tools_offered=a.tools_offered,
                )
                for a in rows
            ):
                window.add(outcome)
            self._judge(name, restored=True)

    def verdict(self, provider: str) -> tuple[Verdict, int] | None:
        """The verdict and how many outcomes it judged; None when no profile
        watches the provider."""
        window = self._windows.get(provider)
        if window is None:
            return None
        return self._verdicts.get(provider, NO_DRIFT), len(window)

    def attempt_finished(self, request_id: str, record: AttemptRecord) -> None:
        if record.outcome == "failed" and record.provider in self._windows:
            self._windows[record.provider].add(ERROR)
            self._judge(record.provider)

    def request_finished(self, summary: RequestSummary) -> None:
        name = summary.provider
        if name is None or name not in self._windows:
            return
        last = summary.attempts[-1] if summary.attempts else None
        if last is None or last.outcome != "ok" or summary.status >= 400:
            return
        if summary.client_disconnected:
            return
        usage = summary.usage
        self._windows[name].add(
            Outcome(
                output_tokens=usage.output_tokens if usage is not None else None,
                stop_reason=summary.stop_reason,
                tool_use=bool(summary.tool_use),
                tools_offered=summary.tools_offered,
            )
        )
        self._judge(name)

    def _judge(self, name: str, *, restored: bool = False) -> None:
        verdict = judge(self._windows[name], self._thresholds)
        before = self._verdicts.get(name, NO_DRIFT)
        self._verdicts[name] = verdict
        if verdict.severity == before.severity:
            return
        self.flagged = {n: v.severity for n, v in self._verdicts.items() if v.severity != "none"}
        fields: dict[str, object] = {
            "provider": name,
            "previous": before.severity,
            "signals": shown(verdict.signals),
        }
        if restored:
            fields["restored"] = True
        if verdict.severity == "none":
            self._log.info(events.PROVIDER_DRIFT_CLEARED, **fields)
        else:
            self._log.warning(
                events.PROVIDER_DRIFT, severity=verdict.severity, reason=verdict.reason, **fields
            )
