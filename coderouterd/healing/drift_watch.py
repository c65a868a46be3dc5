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
of the last day, since its last `ctl restore`, sent to the model it is
configured with), so a restart neither forgets a drift nor starts one
blind, nor brings back one that was forgotten. A reload that points a
provider at another model or server (`model`, `base_url`) sets its window
aside: the old backend's outcomes do not judge the new one. The reload
hands over the summaries queued before it first (daemon.py), and `take`
leaves out the attempts of requests still running then that were sent to
another model than the one now configured (AttemptRecord.model). An
attempt does not name its server: one sent to the old `base_url` with the
same model, finishing after the reload, counts for the new server.

A provider in severe drift that a `demote` profile lists is tried last
(`demoted()`) until RETRY_S after its last outcome that looked bad on its
own; then it is tried in its place, and the first outcome there decides:
a good answer sets the old window aside (`provider.drift_cleared` with
`retried: true`), a bad one keeps it last for RETRY_S more. Without that a
demoted provider would get no traffic to show it has recovered, and stay
last for good. The request log holds what decides it, so start-up replays
it (`_replay`) rather than bring the old window back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coderouterd.clock import Clock
from coderouterd.config.model import Config
from coderouterd.healing.drift import (
    ERROR,
    NO_DRIFT,
    PRESETS,
    RETRY_S,
    Outcome,
    Severity,
    Verdict,
    Window,
    judge,
    looks_bad,
    shown,
)
from coderouterd.routing.backends import Backend, backends_of, moved, sent_elsewhere
from coderouterd.routing.records import AttemptRecord, RequestSummary
from coderouterd.state.reads import Answer
from coderouterd.telemetry import events

_NONE: frozenset[str] = frozenset()


class DriftWatch:
    def __init__(self, config: Config, log: Any, clock: Clock) -> None:
        self._log = log
        self._clock = clock
        self._windows: dict[str, Window] = {}
        self._verdicts: dict[str, Verdict] = {}
        # Providers in severe drift that a `demote` profile lists, and when
        # (monotonic) they are tried in their place again.
        self._until: dict[str, float] = {}
        self._demoting: frozenset[str] = _NONE
        # What each provider talks to (model, base_url).
        self._backends: dict[str, Backend] = {}
        # The model each watched provider is sent: only outcomes of it count.
        self._models: dict[str, str] = {}
        # Providers drifting now, and how badly: what routing reads per request.
        self.flagged: Mapping[str, Severity] = {}
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        self._thresholds = PRESETS[config.drift.sensitivity]
        watched = {name for p in config.profiles if p.drift_action != "off" for name in p.providers}
        self._demoting = frozenset(
            name for p in config.profiles if p.drift_action == "demote" for name in p.providers
        )
        size = self._size = config.drift.window
        backends = backends_of(config)
        # Another model, or another server: the old one's outcomes say nothing of it.
        changed = moved(self._backends, backends)
        self._backends = backends
        self._windows = {
            name: Window(size, () if name in changed else self._windows.get(name, ()))
            for name in sorted(watched)
        }
        self._models = {name: backends[name][0] for name in self._windows}
        for name in list(self._verdicts):
            if name not in watched:
                del self._verdicts[name]
        for name in watched:
            self._judge(name, why="backend_changed" if name in changed else None)
        self._flag()

    def demoted(self) -> frozenset[str]:
        """The providers in severe drift a `demote` profile tries last now."""
        if not self._until:
            return _NONE
        now = self._clock.monotonic()
        return frozenset(n for n, t in self._until.items() if t > now)

    def demoted_for(self, provider: str) -> float | None:
        """How long the provider is tried last yet; None when it is not."""
        until = self._until.get(provider)
        left = None if until is None else until - self._clock.monotonic()
        return left if left is not None and left > 0 else None

    def forget(self, provider: str) -> bool:
        """`ctl restore`: the operator says the backend is fixed; its past
        outcomes no longer judge it. Whether it was drifting."""
        window = self._windows.get(provider)
        if window is None:
            return False
        drifting = self._verdicts.get(provider, NO_DRIFT).severity != "none"
        self._windows[provider] = Window(self._size)
        self._judge(provider, why="manual")
        return drifting

    @property
    def watched(self) -> tuple[str, ...]:
        return tuple(self._windows)

    @property
    def models(self) -> dict[str, str]:
        """The model each watched provider is sent: only its outcomes are read back at start."""
        return dict(self._models)

    @property
    def window(self) -> int:
        return self._size

    def load(self, answers: Mapping[str, Sequence[Answer]]) -> None:
        """Start-up: each provider's last answers from the request log (since
        `ctl restore` last forgot its drift), oldest first."""
        wall, now = self._clock.wall(), self._clock.monotonic()
        for name, rows in answers.items():
            if name not in self._windows:
                continue
            until = self._replay(name, rows)
            self._judge(name, restored=True)
            if name in self._until and until is not None:
                # Tried last for what is left of RETRY_S after its last bad outcome.
                self._until[name] = now + max(0.0, until - wall)

    def _replay(self, name: str, rows: Sequence[Answer]) -> float | None:
        """Refill the provider's window as take() filled it, on the rows' wall
        clock: a good answer where a `demote` profile tried it in its place
        again set the outcomes before it aside then, and does again. When
        (wall) its demotion ends; None when it is not demoted."""
        window = self._windows[name]
        until: float | None = None
        for a in rows:
            # As take() adds them: the request's failed attempts, then its answer.
            outcomes = [ERROR] * a.failures + ([_answer(a)] if a.answered else [])
            for o in outcomes:
                if until is not None and looks_bad(o):
                    until = a.ts + RETRY_S
                elif until is not None and until <= a.ts:
                    window = Window(self._size)
                    until = None
                window.add(o)
            if name in self._demoting and judge(window, self._thresholds).severity == "severe":
                until = a.ts + RETRY_S if until is None else until
            else:
                until = None
        self._windows[name] = window
        return until

    def verdict(self, provider: str) -> tuple[Verdict, int] | None:
        """The verdict and how many outcomes it judged; None when no profile
        watches the provider."""
        window = self._windows.get(provider)
        if window is None:
            return None
        return self._verdicts.get(provider, NO_DRIFT), len(window)

    def take(self, summaries: Sequence[RequestSummary]) -> None:
        """Put a batch of requests' outcomes in their windows; judge those that changed."""
        touched: dict[str, str | None] = {}
        models = self._models
        for summary in summaries:
            for attempt in summary.attempts:
                if attempt.outcome == "failed" and _sent_to(attempt, models):
                    self._add(attempt.provider, ERROR, touched)
            name = summary.provider
            outcome = _outcome(summary, models[name]) if name in models else None
            if name is not None and outcome is not None:
                self._add(name, outcome, touched)
        for name, why in touched.items():
            self._judge(name, why=why)

    def _add(self, name: str, outcome: Outcome, touched: dict[str, str | None]) -> None:
        until = self._until.get(name)
        if until is not None:
            now = self._clock.monotonic()
            if looks_bad(outcome):
                self._until[name] = now + RETRY_S
            elif until <= now:
                # Tried in its place again and it answered well: what it
                # did before no longer judges it.
                self._windows[name] = Window(self._size)
                del self._until[name]
                touched[name] = "retried"
        self._windows[name].add(outcome)
        touched.setdefault(name, None)

    def _flag(self) -> None:
        self.flagged = {n: v.severity for n, v in self._verdicts.items() if v.severity != "none"}

    def _judge(self, name: str, *, restored: bool = False, why: str | None = None) -> None:
        verdict = judge(self._windows[name], self._thresholds)
        before = self._verdicts.get(name, NO_DRIFT)
        self._verdicts[name] = verdict
        if verdict.severity == "severe" and name in self._demoting:
            self._until.setdefault(name, self._clock.monotonic() + RETRY_S)
        else:
            self._until.pop(name, None)
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
        if why is not None:
            fields[why] = True
        if verdict.severity == "none":
            self._log.info(events.PROVIDER_DRIFT_CLEARED, **fields)
        else:
            self._log.warning(
                events.PROVIDER_DRIFT, severity=verdict.severity, reason=verdict.reason, **fields
            )


def _sent_to(attempt: AttemptRecord, models: Mapping[str, str]) -> bool:
    """Whether the attempt went to the model its provider is watched with
    now; one that does not name its model counts as sent to it."""
    model = models.get(attempt.provider)
    return model is not None and not sent_elsewhere(attempt.model, model)


def _outcome(summary: RequestSummary, model: str) -> Outcome | None:
    """An answer of `model` the client got whole (the last attempt `ok`,
    status below 400, the client still there); None for anything else."""
    last = summary.attempts[-1] if summary.attempts else None
    if last is None or last.outcome != "ok" or summary.status >= 400:
        return None
    if sent_elsewhere(last.model, model):
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


def _answer(a: Answer) -> Outcome:
    return Outcome(
        output_tokens=a.output_tokens,
        stop_reason=a.stop_reason,
        tool_use=a.tool_use,
        tools_offered=a.tools_offered,
    )
