"""Drift at work: each provider's window of outcomes, its verdict, its log lines.

`DriftWatch.take` gets request summaries in batches (telemetry/deferred.py:
once a second, and before `ctl status` answers). Each failed attempt, and
each answer the client got whole (the last attempt `ok`, status below 400,
the client still there), goes into its provider's window, oldest out; the
windows that changed are judged again (drift.py) and each change of
severity is logged: `provider.drift` (warning) when it rises or changes,
`provider.drift_cleared` when it ends. Drift builds over many answers, so a
verdict a second late costs nothing, while judging after every answer cost
a request several percent of its CPU. Only providers some profile watches
(`drift_action` other than `off`) have a window. At start the windows are
refilled from the request log (each provider's failed attempts and answers
of the last day), so a restart neither forgets a drift nor starts one
blind.
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
from coderouterd.routing.records import RequestSummary
from coderouterd.state.reads import Answer
from coderouterd.telemetry import events


class DriftWatch:
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
        self._flag()

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
            for a in rows:
                # As take() adds them: the request's failed attempts, then its answer.
                for _ in range(a.failures):
                    window.add(ERROR)
                if a.answered:
                    window.add(
                        Outcome(
                            output_tokens=a.output_tokens,
                            stop_reason=a.stop_reason,
                            tool_use=a.tool_use,
                            tools_offered=a.tools_offered,
                        )
                    )
            self._judge(name, restored=True)

    def verdict(self, provider: str) -> tuple[Verdict, int] | None:
        """The verdict and how many outcomes it judged; None when no profile
        watches the provider."""
        window = self._windows.get(provider)
        if window is None:
            return None
        return self._verdicts.get(provider, NO_DRIFT), len(window)

    def take(self, summaries: Sequence[RequestSummary]) -> None:
        """Put a batch of requests' outcomes in their windows; judge those that changed."""
        touched: dict[str, None] = {}
        for summary in summaries:
            for attempt in summary.attempts:
                if attempt.outcome == "failed" and attempt.provider in self._windows:
                    self._windows[attempt.provider].add(ERROR)
                    touched[attempt.provider] = None
            name = summary.provider
            outcome = _outcome(summary) if name in self._windows else None
            if name is not None and outcome is not None:
                self._windows[name].add(outcome)
                touched[name] = None
        for name in touched:
            self._judge(name)

    def _flag(self) -> None:
        self.flagged = {n: v.severity for n, v in self._verdicts.items() if v.severity != "none"}

    def _judge(self, name: str, *, restored: bool = False) -> None:
        verdict = judge(self._windows[name], self._thresholds)
        before = self._verdicts.get(name, NO_DRIFT)
        self._verdicts[name] = verdict
        if verdict.severity == before.severity:
            return
        self._flag()
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


def _outcome(summary: RequestSummary) -> Outcome | None:
    """An answer the client got whole (the last attempt `ok`, status below
    400, the client still there); None for anything else."""
    last = summary.attempts[-1] if summary.attempts else None
    if last is None or last.outcome != "ok" or summary.status >= 400:
        return None
    if summary.client_disconnected:
        return None
    usage = summary.usage
    return Outcome(
        output_tokens=usage.output_tokens if usage is not None else None,
        stop_reason=summary.stop_reason,
        tool_use=bool(summary.tool_use),
        tools_offered=summary.tools_offered,
    )
