"""The self-healing book's state: what it knows of each provider (pure).

`BookState` holds each provider's policy (from the profiles that list it),
health and backend, takes a (re)loaded config, loads the exclusions, their
episodes and the times of the restart_commands stored before a restart,
counts the attempts each provider is answering, restores a provider, and
answers the planner's questions (which providers are excluded, by hand, or
cooling down). The decisions that change it are `HealingBook`'s (policy.py).

A reload that points a provider at another model or server (`model`,
`base_url`) starts its streak of failures afresh, and the attempts sent to
the old backend that end after it count for nothing (`sent_to_current`):
the old backend's failures do not judge the new one, nor does its success
restore it. An attempt is taken to have gone to the model it names and to
the server configured when it began. An exclusion in force stays: its
probes go to the new backend and restore it once it answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Self

from coderouterd.config.model import Config, SelfHealingConfig
from coderouterd.errors import MEMORY_PRESSURE
from coderouterd.healing.decisions import (
    MANUAL,
    Decision,
    Exclusion,
    Policy,
    ProviderHealth,
    Restore,
    next_probe_delay,
    policies_for,
)
from coderouterd.routing.backends import Backend, backends_of, moved, sent_elsewhere


@dataclass(slots=True)
class BookState:
    """What the book holds of every provider, and how it is configured,
    queried and restored; the decisions are policy.py's."""

    settings: SelfHealingConfig
    _policies: dict[str, Policy] = field(default_factory=dict)
    _health: dict[str, ProviderHealth] = field(default_factory=dict)
    _episodes: int = 0
    # What a reload that removes a provider keeps of it: its restart_command
    # (running, when it last started), so that a reload that puts it back
    # neither runs a second one beside it nor sooner than restart_min_interval_s.
    _gone: dict[str, ProviderHealth] = field(default_factory=dict)
    # Attempts each provider is answering now (no continuous probe meanwhile).
    _in_flight: dict[str, int] = field(default_factory=dict)
    # Kept up to date rather than built per request: every plan asks.
    _excluded: frozenset[str] = frozenset()
    _manual: frozenset[str] = frozenset()
    _cooling: frozenset[str] = frozenset()
    # What each provider talks to (model, base_url).
    _backends: dict[str, Backend] = field(default_factory=dict)

    @classmethod
    def for_config(cls, config: Config, *, now_mono: float = 0.0) -> Self:
        book = cls(config.self_healing)
        book.configure(config, now_mono=now_mono)
        return book

    def configure(self, config: Config, *, now_mono: float) -> list[Decision]:
        """Take a (re)loaded config; providers no longer in it are restored."""
        self.settings = config.self_healing
        self._policies = policies_for(config)
        backends = backends_of(config)
        for name in moved(self._backends, backends) & self._health.keys():
            health = self._health[name]
            health.streak, health.last_failure = 0, None
        self._backends = backends
        for name in [n for n in self._gone if n in self._policies]:
            self._health[name] = self._gone.pop(name)
        for name, policy in self._policies.items():
            if policy.watched:
                # The first continuous probe one interval from now.
                health = self._health.setdefault(name, ProviderHealth())
                if health.last_seen is None:
                    health.last_seen = now_mono
        out: list[Decision] = []
        for name in [n for n in self._health if n not in self._policies]:
            health = self._health.pop(name)
            if health.restarting or health.last_restart is not None:
                self._gone[name] = ProviderHealth(
                    restarting=health.restarting,
                    restart_episode=health.restart_episode,
                    last_restart=health.last_restart,
                    restarts=health.restarts,
                )
            if health.excluded is not None:
                out.append(self._restored(name, health, "config_removed", now_mono))
        return out

    def backend(self, provider: str) -> Backend | None:
        """What `provider` talks to now: an attempt starting keeps it."""
        return self._backends.get(provider)

    def sent_to_current(self, provider: str, model: str | None, started: Backend | None) -> bool:
        """Whether an attempt sent to `model`, begun while `provider` talked
        to `started`, went to the backend it talks to now. Its server is
        the one configured when it began: one begun after a reload, for a
        request planned before it, is taken for the new server's."""
        backend = self._backends.get(provider)
        if backend is None:
            return True
        return (started is None or started == backend) and not sent_elsewhere(model, backend[0])

    def attempt_started(self, provider: str) -> None:
        self._in_flight[provider] = self._in_flight.get(provider, 0) + 1

    def attempt_ended(self, provider: str) -> bool:
        """An attempt that `attempt_started` counted ended: whether the
        provider has none left (its continuous probes are due again)."""
        left = self._in_flight.get(provider, 0) - 1
        if left > 0:
            self._in_flight[provider] = left
            return False
        self._in_flight.pop(provider, None)
        return True

    def excluded(self) -> frozenset[str]:
        """Providers excluded as unhealthy: each profile's action says what to do."""
        return self._excluded

    def manual(self) -> frozenset[str]:
        """Providers the operator excluded: no profile tries them."""
        return self._manual

    def cooling(self) -> frozenset[str]:
        """Providers cooling down after running out of memory: `skip` profiles skip them."""
        return self._cooling

    def _changed(self) -> None:
        reasons = {n: h.excluded.reason for n, h in self._health.items() if h.excluded is not None}
        self._manual = frozenset(n for n, r in reasons.items() if r == MANUAL)
        self._cooling = frozenset(n for n, r in reasons.items() if r == MEMORY_PRESSURE)
        self._excluded = frozenset(reasons) - self._manual - self._cooling

    def health(self, provider: str) -> ProviderHealth:
        return self._health.get(provider) or ProviderHealth()

    def threshold(self, provider: str) -> int | None:
        policy = self._policies.get(provider)
        return None if policy is None else policy.threshold

    def load_episodes(self, latest: int) -> None:
        """The largest episode an earlier run of the daemon numbered (the
        audit log): later exclusions are numbered after it, never again."""
        self._episodes = max(self._episodes, latest)

    def load(
        self,
        rows: Iterable[tuple[str, str, float, float | None]],
        *,
        now_mono: float,
        now_wall: float,
        rand: Callable[[], float],
        episodes: Mapping[str, int] | None = None,
    ) -> list[Decision]:
        """Exclusions stored before a restart, as (provider, reason, since,
        until) in wall time: kept with their time and `episodes`' number
        for each (the audit log's; else a new one), probed soon, each at a
        time of its own (`rand()` in [0, 1) jitters each), never restarted at
        start-up (a daemon that crash-loops must not loop restarts too); a
        cooldown keeps what is left of it. Those of providers no longer
        configured, and cooldowns that ended, are restored."""
        out: list[Decision] = []
        audited = episodes or {}
        for provider, reason, since_wall, until_wall in rows:
            episode = audited.get(provider)
            if episode is None:
                self._episodes += 1
                episode = self._episodes
            since_mono = now_mono - max(0.0, now_wall - since_wall)
            ex = Exclusion(reason, since_wall, since_mono, episode)
            health = self._health.setdefault(provider, ProviderHealth())
            health.excluded = ex
            if until_wall is not None:
                ex.until_wall, ex.until_mono = until_wall, now_mono + (until_wall - now_wall)
            if provider not in self._policies or (
                until_wall is not None and until_wall <= now_wall
            ):
                gone = self._health.pop(provider)
                via = "config_removed" if provider not in self._policies else "expired"
                out.append(self._restored(provider, gone, via, now_mono))
                continue
            if reason in (MANUAL, MEMORY_PRESSURE):
                continue
            # A few seconds, so that a backend which came back meanwhile is
            # restored at once, without a probe storm at every restart.
            ex.next_probe = now_mono + min(5.0, self.settings.recovery_initial_interval_s) * (
                1 + self.settings.recovery_jitter * (2 * rand() - 1)
            )
        self._changed()
        return out

    def load_restarts(
        self, started: Mapping[str, float], *, now_mono: float, now_wall: float
    ) -> None:
        """When each provider's restart_command last started before this
        start, in wall time (the audit log): restart_min_interval_s counts
        from there, so a daemon restarted often does not restart a backend
        as often. Providers no longer configured are left out."""
        for provider, started_wall in started.items():
            if provider not in self._policies:
                continue
            health = self._health.setdefault(provider, ProviderHealth())
            when = now_mono - max(0.0, now_wall - started_wall)
            if health.last_restart is None or when > health.last_restart:
                health.last_restart = when

    def _restored(
        self,
        provider: str,
        health: ProviderHealth,
        via: str,
        now_mono: float,
        latency_ms: float | None = None,
    ) -> Restore:
        ex = health.excluded
        assert ex is not None
        health.excluded = None
        self._changed()
        return Restore(
            provider,
            via,
            round(max(0.0, now_mono - ex.since_mono), 3),
            ex.probes_failed,
            ex.episode,
            latency_ms,
        )

    def _delay(self, failed: int, u: float) -> float:
        return next_probe_delay(failed, self.settings, u)
