"""Pace at work: the decoding speeds of the providers `adaptive` profiles list.

`PaceWatch.take` gets request summaries in batches (telemetry/deferred.py)
and adds the speed of each streamed answer a watched provider gave whole
(pace.py); each provider that got one is judged again. A slow verdict
demotes the provider for DEMOTE_S from that answer on: `demoted()` is what
routing reads per request, and an `adaptive` profile tries a demoted
provider after the one that follows it. `provider.slow` (warning) is
logged when a provider turns slow, `provider.slow_cleared` when answers at
its usual speed bring it back. At start the speeds are refilled from the
request log (the last day's streamed answers), so a restart does not
forget a slow backend (demoted for what is left of DEMOTE_S after its last
answer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coderouterd.clock import Clock
from coderouterd.config.model import Config
from coderouterd.healing.pace import DEMOTE_S, Pace, Speeds, decode_rate
from coderouterd.routing.records import RequestSummary
from coderouterd.state.reads import Streamed
from coderouterd.telemetry import events

_NONE: frozenset[str] = frozenset()


class PaceWatch:
    def __init__(self, config: Config, log: Any, clock: Clock) -> None:
        self._log = log
        self._clock = clock
        self._speeds: dict[str, Speeds] = {}
        # Slow providers, and when (monotonic) each one's demotion ends.
        self._until: dict[str, float] = {}
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        watched = sorted({n for p in config.profiles if p.adaptive for n in p.providers})
        self._speeds = {name: self._speeds.get(name, Speeds()) for name in watched}
        self._until = {n: t for n, t in self._until.items() if n in self._speeds}

    @property
    def watched(self) -> tuple[str, ...]:
        return tuple(self._speeds)

    def load(self, answers: Mapping[str, Sequence[Streamed]]) -> None:
        """Start-up: each provider's last streamed answers from the request log, oldest first."""
        for name, rows in answers.items():
            speeds = self._speeds.get(name)
            if speeds is None:
                continue
            last = None
            for row in rows:
                rate = decode_rate(row.output_tokens, row.ttfb_ms, row.latency_ms)
                if rate is not None:
                    speeds.add(rate)
                    last = row.ts
            if last is not None:
                # Demoted for what is left of DEMOTE_S after the last answer before the restart.
                ago = max(0.0, self._clock.wall() - last)
                self._judge(name, restored=True, ago_s=ago)

    def take(self, summaries: Sequence[RequestSummary]) -> None:
        touched: dict[str, None] = {}
        for s in summaries:
            name = s.provider
            if name not in self._speeds or not s.stream or s.status >= 400 or not s.attempts:
                continue
            last = s.attempts[-1]
            if last.outcome != "ok" or s.client_disconnected or s.usage is None:
                continue
            rate = decode_rate(s.usage.output_tokens, last.ttfb_ms, last.latency_ms)
            if rate is not None:
                self._speeds[name].add(rate)
                touched[name] = None
        for name in touched:
            self._judge(name)

    def demoted(self) -> frozenset[str]:
        """The providers `adaptive` profiles try later now."""
        if not self._until:
            return _NONE
        now = self._clock.monotonic()
        return frozenset(n for n, t in self._until.items() if t > now)

    def pace(self, provider: str) -> tuple[Pace, float | None] | None:
        """The provider's speeds and how long its demotion lasts yet (None:
        not demoted); None when no `adaptive` profile lists it."""
        speeds = self._speeds.get(provider)
        if speeds is None:
            return None
        until = self._until.get(provider)
        left = None if until is None else until - self._clock.monotonic()
        return speeds.pace(), left if left is not None and left > 0 else None

    def _judge(self, name: str, *, restored: bool = False, ago_s: float = 0.0) -> None:
        """`ago_s`: how long ago the provider's last answer came."""
        pace = self._speeds[name].pace()
        fields: dict[str, object] = {
            "provider": name,
            "usual_tokens_per_s": _rounded(pace.usual),
            "recent_tokens_per_s": _rounded(pace.recent),
        }
        if restored:
            fields["restored"] = True
        if pace.slow:
            left = DEMOTE_S - ago_s
            if name not in self._until:
                self._log.warning(events.PROVIDER_SLOW, demoted_for_s=max(0.0, left), **fields)
            # Each slow answer keeps it demoted: one request in DEMOTE_S tells whether it is back.
            if left > 0:
                self._until[name] = self._clock.monotonic() + left
        elif pace.recent is not None and self._until.pop(name, None) is not None:
            self._log.info(events.PROVIDER_SLOW_CLEARED, **fields)


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 1)
