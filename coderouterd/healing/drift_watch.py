"""Drift at work: each provider's window of outcomes, its verdict, its log lines.

`DriftWatch` is one of the engine's observers. A failed attempt and an
answer the client got whole (outcome `ok`, status below 400, the client
still there) are queued for their provider; once a second (and whenever
`ctl status` asks) the queued outcomes go into their windows, oldest out,
the verdicts are judged again (drift.py) and each change of severity is
logged: `provider.drift` (warning) when it rises or changes,
`provider.drift_cleared` when it ends. Drift builds over many answers, so
a verdict a second late costs nothing, while judging after every answer
cost a request several percent of its CPU. Only providers some profile
watches (`drift_action` other than `off`) have a window. At start the
windows are refilled with each provider's last answers from the request
log (its failed attempts are not read back), so a restart neither forgets
a drift nor starts one blind.
"""

from __future__ import annotations

import asyncio
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
from coderouterd.tasks import cancel_and_wait, spawn
from coderouterd.telemetry import events

JUDGE_INTERVAL_S = 1.0
# Judged at once past this many queued outcomes, so the queue stays small
# even if the loop is held up.
_MAX_PENDING = 4096


class DriftWatch(BaseObserver):
    def __init__(self, config: Config, log: Any) -> None:
        self._log = log
        self._windows: dict[str, Window] = {}
        self._verdicts: dict[str, Verdict] = {}
        self._pending: list[AttemptRecord | RequestSummary] = []
        self._task: asyncio.Task[None] | None = None
        # Providers drifting now, and how badly: what routing reads per request.
        self.flagged: Mapping[str, Severity] = {}
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        self.judge_pending()
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
            for a in rows:
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
        self.judge_pending()
        window = self._windows.get(provider)
        if window is None:
            return None
        return self._verdicts.get(provider, NO_DRIFT), len(window)

    def attempt_finished(self, request_id: str, record: AttemptRecord) -> None:
        if record.outcome == "failed":
            self._queue(record)

    def request_finished(self, summary: RequestSummary) -> None:
        # Read when judged: the request path only queues it.
        if summary.provider is not None:
            self._queue(summary)

    def _queue(self, item: AttemptRecord | RequestSummary) -> None:
        self._pending.append(item)
        if len(self._pending) >= _MAX_PENDING:
            self.judge_pending()

    def judge_pending(self) -> None:
        """Put the queued outcomes in their windows and judge those that changed."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        touched: dict[str, None] = {}
        for item in pending:
            outcome: Outcome | None
            if isinstance(item, AttemptRecord):
                name, outcome = item.provider, ERROR
            else:
                name, outcome = item.provider or "", _outcome(item)
            window = self._windows.get(name)
            if window is not None and outcome is not None:
                window.add(outcome)
                touched[name] = None
        for name in touched:
            self._judge(name)

    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._run(), name="drift:judge")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        self.judge_pending()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(JUDGE_INTERVAL_S)
            self.judge_pending()

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
