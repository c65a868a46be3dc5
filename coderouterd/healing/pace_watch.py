"""Pace at work: the decoding speeds of the providers `adaptive` profiles list.

`PaceWatch.take` gets request summaries in batches (telemetry/deferred.py)
and adds the speed of each streamed answer a watched provider gave whole
(pace.py); each provider that got one is judged again. A slow provider
is demoted for DEMOTE_S from each slow answer on (an answer at its usual
speed renews nothing): `demoted()` is what routing reads per request, and
an `adaptive` profile tries a demoted provider after the one that follows
it. `provider.slow` (warning) is logged when a provider turns slow,
`provider.slow_cleared` when answers at its usual speed bring it back. At
start the speeds are refilled from the request log (the last day's
streamed answers of the model the provider is configured with), so a
restart does not forget a slow backend (demoted for what is left of
DEMOTE_S after its last slow answer ended; still slow, and so cleared in
time, when nothing is left). A reload that points a provider at another
model or server (`model`, `base_url`) forgets its speeds: each backend is
compared with itself. The reload hands over the summaries queued before it
first (daemon.py), and `take` leaves out the answers of streams still
running then that were sent to another model than the one now configured
(AttemptRecord.model). An attempt does not name its server: a stream from
the old `base_url` with the same model, ending after the reload, counts
as the new server's speed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from coderouterd.clock import Clock
from coderouterd.config.model import Config
from coderouterd.healing.pace import DEMOTE_S, Pace, Speeds, decode_rate
from coderouterd.routing.backends import Backend, backends_of, moved, sent_elsewhere
from coderouterd.routing.records import RequestSummary
from coderouterd.state.reads import Streamed
from coderouterd.telemetry import events

_NONE: frozenset[str] = frozenset()


class PaceWatch:
    def __init__(self, config: Config, log: Any, clock: Clock) -> None:
        self._log = log
        self._clock = clock
        self._speeds: dict[str, Speeds] = {}
        # Slow providers, and when (monotonic) each one's demotion ends or ended.
        self._until: dict[str, float] = {}
        # What each provider talks to: another model, or another server,
        # decodes at a speed of its own.
        self._backends: dict[str, Backend] = {}
        # The model each watched provider is sent: only answers of it count.
        self._models: dict[str, str] = {}
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        watched = sorted({n for p in config.profiles if p.adaptive for n in p.providers})
        backends = backends_of(config)
        changed = moved(self._backends, backends)
        self._backends = backends
        for name in changed & self._until.keys():
            del self._until[name]
            self._log.info(events.PROVIDER_SLOW_CLEARED, provider=name, backend_changed=True)
        self._speeds = {
            name: Speeds() if name in changed else self._speeds.get(name, Speeds())
            for name in watched
        }
        self._until = {n: t for n, t in self._until.items() if n in self._speeds}
        self._models = {name: backends[name][0] for name in self._speeds}

    @property
    def watched(self) -> tuple[str, ...]:
        return tuple(self._speeds)

    @property
    def models(self) -> dict[str, str]:
        """The model each watched provider is sent: only its answers are read back at start."""
        return dict(self._models)

    def load(self, answers: Mapping[str, Sequence[Streamed]]) -> None:
        """Start-up: each provider's last streamed answers from the request log, oldest first."""
        for name, rows in answers.items():
            speeds = self._speeds.get(name)
            if speeds is None:
                continue
            timed = []
            for row in rows:
                rate = decode_rate(row.output_tokens, row.ttfb_ms, row.latency_ms)
                if rate is not None:
                    speeds.add(rate)
                    timed.append((row.ts, rate))
            if timed:
                # Demoted for what is left of DEMOTE_S after its last slow answer ended.
                pace = speeds.pace()
                slow_ended = [ts for ts, rate in timed if pace.slower(rate)]
                ago = max(0.0, self._clock.wall() - max(slow_ended)) if slow_ended else None
                self._judge(name, ago, restored=True)

    def take(self, summaries: Sequence[RequestSummary]) -> None:
        touched: dict[str, list[float]] = {}
        models = self._models
        for s in summaries:
            name = s.provider
            if name not in models or not s.stream or s.status >= 400 or not s.attempts:
                continue
            last = s.attempts[-1]
            if last.outcome != "ok" or s.client_disconnected or s.usage is None:
                continue
            if sent_elsewhere(last.model, models[name]):
                # Another model's speed, from a stream a reload outlived.
                continue
            rate = decode_rate(s.usage.output_tokens, last.ttfb_ms, last.latency_ms)
            if rate is not None:
                self._speeds[name].add(rate)
                touched.setdefault(name, []).append(rate)
        for name, rates in touched.items():
            pace = self._speeds[name].pace()
            self._judge(name, 0.0 if any(pace.slower(r) for r in rates) else None)

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

    def _judge(self, name: str, slow_ago_s: float | None, *, restored: bool = False) -> None:
        """`slow_ago_s`: how long ago the last slow answer just counted ended
        (None: none of them was slow)."""
        pace = self._speeds[name].pace()
        fields: dict[str, object] = {
            "provider": name,
            "usual_tokens_per_s": _rounded(pace.usual),
            "recent_tokens_per_s": _rounded(pace.recent),
        }
        if restored:
            fields["restored"] = True
        if pace.slow:
            left = 0.0 if slow_ago_s is None else max(0.0, DEMOTE_S - slow_ago_s)
            until = self._clock.monotonic() + left
            if name not in self._until:
                self._log.warning(events.PROVIDER_SLOW, demoted_for_s=left, **fields)
            # Each slow answer keeps it demoted, and only a slow one: one
            # request in DEMOTE_S tells whether it is back. Kept with no time
            # left too (restored long after), so that back at speed it clears.
            self._until[name] = max(self._until.get(name, until), until)
        elif pace.recent is not None and self._until.pop(name, None) is not None:
            self._log.info(events.PROVIDER_SLOW_CLEARED, **fields)


def _rounded(rate: float | None) -> float | None:
    return None if rate is None else round(rate, 1)
