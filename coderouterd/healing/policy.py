"""Self-healing decisions: when a provider is excluded, probed, restarted, restored (pure).

A provider listed by an `exclude` or `demote` profile is excluded after 2 x
threshold consecutive failed attempts (the smallest threshold among those
profiles), a streak that starts over after `failure_window_s` without a
failure (for a provider probed while in service, at least twice its probe
interval plus `probe_timeout_s`, so that probes further apart than the
window still make a streak). Only `failed` attempts count: an error handed
back to the client, a refused or interrupted attempt, or rejected
credentials say nothing about the backend's health. An excluded provider is
probed until a probe succeeds, the delays doubling from
`recovery_initial_interval_s` to `recovery_max_interval_s` with jitter; its
restart_command runs once per exclusion (not again within
`restart_min_interval_s` of the last run, this daemon's or, as the audit log
tells, an earlier one's; never two at once), and its first probe comes one
initial interval (with jitter) after the command ends. A real request that
gets through restores it too. With continuous probes on, providers in
service that are not paid are probed after an interval without attempts
(never while one is answering an attempt), and a failed probe counts as a
failed attempt. A probe answered with a 4xx that a real request would get
back counts like such an attempt: the backend is up, so a recovery probe so
answered restores it, and a continuous one adds nothing to a streak. The
operator may exclude a provider by hand (never probed, back only by hand)
and restore any exclusion.

`HealingBook` only decides: every method takes the time and returns what to
do, and the service (service.py) does it. Each exclusion is an episode with
its own number, so the result of a probe or restart from an earlier episode
is recognised and ignored.
"""

from __future__ import annotations

from coderouterd.errors import MEMORY_PRESSURE
from coderouterd.healing.book import BookState
from coderouterd.healing.decisions import (
    AUTH_STATUSES,
    CONTINUOUS,
    MANUAL,
    UNHEALTHY,
    Decision,
    Exclude,
    Exclusion,
    MemoryPressure,
    Policy,
    Probe,
    ProviderHealth,
    Restart,
    RestartSkipped,
)


class HealingBook(BookState):
    """Every decision of self-healing (see the module's docstring)."""

    __slots__ = ()

    def observe(
        self,
        provider: str,
        *,
        outcome: str,
        reason: str | None,
        status: int | None,
        now_mono: float,
        now_wall: float,
        u: float = 0.5,
    ) -> list[Decision]:
        """One finished attempt of a real request; `u` in [0, 1) jitters the first probe."""
        policy = self._policies.get(provider)
        if policy is None:
            return []
        if outcome in ("ok", "failed", "returned", "too_long"):
            # Every attempt passes here: no ProviderHealth built unless needed.
            health = self._health.get(provider)
            if health is None:
                health = self._health[provider] = ProviderHealth()
            health.last_seen = now_mono
        if status in AUTH_STATUSES:
            return []
        if outcome == "ok":
            return self._succeeded(provider, now_mono)
        if outcome != "failed":
            return []
        out = self._failed(
            provider,
            policy,
            reason=reason,
            status=status,
            now_mono=now_mono,
            now_wall=now_wall,
            u=u,
        )
        if reason == MEMORY_PRESSURE and policy.pressure_noted:
            out = self._pressure(
                provider, policy, out, status=status, now_mono=now_mono, now_wall=now_wall
            )
        return out

    def _pressure(
        self,
        provider: str,
        policy: Policy,
        out: list[Decision],
        *,
        status: int | None,
        now_mono: float,
        now_wall: float,
    ) -> list[Decision]:
        """After a failure that said the backend ran out of memory: note it,
        and cool the provider down (unless just excluded as unhealthy, which
        outlasts a cooldown)."""
        noted: list[Decision] = [MemoryPressure(provider, status, policy.cooldown_s)]
        if out or policy.cooldown_s is None:
            return noted + out
        return noted + self._cool(provider, policy.cooldown_s, status, now_mono, now_wall)

    def _cool(
        self, provider: str, cooldown_s: float, status: int | None, now_mono: float, now_wall: float
    ) -> list[Decision]:
        """A cooldown starts, or starts over; nothing if a longer exclusion holds."""
        health = self._health[provider]
        ex = health.excluded
        if ex is not None and ex.reason != MEMORY_PRESSURE:
            return []
        self._episodes += 1
        until_wall = now_wall + cooldown_s
        health.excluded = Exclusion(
            MEMORY_PRESSURE,
            now_wall if ex is None else ex.since_wall,
            now_mono if ex is None else ex.since_mono,
            self._episodes,
            until_mono=now_mono + cooldown_s,
            until_wall=until_wall,
        )
        self._changed()
        threshold = self._policies[provider].threshold
        return [
            Exclude(
                provider,
                MEMORY_PRESSURE,
                health.streak,
                threshold,
                MEMORY_PRESSURE,
                status,
                self._episodes,
                now_wall,
                until_wall,
            )
        ]

    def _failed(
        self,
        provider: str,
        policy: Policy,
        *,
        reason: str | None,
        status: int | None,
        now_mono: float,
        now_wall: float,
        u: float,
    ) -> list[Decision]:
        health = self._health.setdefault(provider, ProviderHealth())
        if health.last_failure is not None and (
            now_mono - health.last_failure > self._failure_window(policy)
        ):
            health.streak = 0
        health.streak += 1
        health.last_failure = now_mono
        health.last_reason, health.last_status = reason, status
        # A cooldown gives way to an exclusion as unhealthy, nothing else does.
        held = health.excluded is not None and health.excluded.reason != MEMORY_PRESSURE
        if policy.threshold is None or held or health.streak < 2 * policy.threshold:
            return []
        self._episodes += 1
        episode = self._episodes
        health.excluded = Exclusion(UNHEALTHY, now_wall, now_mono, episode)
        self._changed()
        out: list[Decision] = [
            Exclude(
                provider,
                UNHEALTHY,
                health.streak,
                policy.threshold,
                reason,
                status,
                episode,
                now_wall,
            )
        ]
        restart = self._restart(provider, policy, health, now_mono)
        if restart is not None:
            out.append(restart)
        if not health.restarting:
            health.excluded.next_probe = now_mono + self._delay(0, u)
        return out

    def _failure_window(self, policy: Policy) -> float:
        """How long after a failure the next one still continues its streak.
        A provider probed while in service is seen at least once an interval
        and a probe after its last attempt or probe: twice that keeps the
        streak of a dead backend probed less often than failure_window_s."""
        s = self.settings
        if not policy.watched or s.continuous_probe_interval_s is None:
            return s.failure_window_s
        return max(s.failure_window_s, 2 * (s.continuous_probe_interval_s + s.probe_timeout_s))

    def _succeeded(self, provider: str, now_mono: float) -> list[Decision]:
        health = self._health.get(provider)
        if health is None:
            return []
        health.streak = 0
        if health.excluded is not None and health.excluded.reason != MANUAL:
            return [self._restored(provider, health, "request", now_mono)]
        return []

    def _restart(
        self, provider: str, policy: Policy, health: ProviderHealth, now: float
    ) -> Restart | RestartSkipped | None:
        assert health.excluded is not None
        episode = health.excluded.episode
        if policy.restart is None:
            return None
        if health.restarting:
            return RestartSkipped(provider, "running", None, episode)
        wait = self.settings.restart_min_interval_s
        if health.last_restart is not None and now - health.last_restart < wait:
            left = round(wait - (now - health.last_restart), 3)
            return RestartSkipped(provider, "too_soon", left, episode)
        health.restarting = True
        health.restart_episode = episode
        health.last_restart = now
        return Restart(provider, policy.restart, policy.restart_timeout_s, episode)

    def restart_finished(self, provider: str, episode: int, *, now_mono: float, u: float) -> None:
        """The restart_command started for `episode` ended (whatever its
        outcome): probe one initial interval later (`u` in [0, 1) jitters
        it), giving the backend time to come up. The provider may have been
        taken out by a reload meanwhile, and put back."""
        health = self._health.get(provider) or self._gone.get(provider)
        if health is None or health.restart_episode != episode:
            return
        health.restarting = False
        health.restarts += 1
        ex = health.excluded
        # Also an exclusion made while this restart ran (a later episode): it
        # waited for the restart instead of starting its own. A cooldown has
        # its end and no probe.
        if ex is not None and ex.reason == UNHEALTHY and ex.next_probe is None:
            ex.next_probe = now_mono + self._delay(0, u)

    def due(self, now_mono: float) -> list[Decision]:
        """Cooldowns that ended, and probes to send now (each provider has at
        most one in flight; an exclusion has no next probe while its probe
        is out)."""
        out: list[Decision] = []
        for name, health in list(self._health.items()):
            ex = health.excluded
            if ex is not None and ex.until_mono is not None and ex.until_mono <= now_mono:
                out.append(self._restored(name, health, "expired", now_mono))
                continue
            when = self._next_probe(name, health)
            if when is None or when > now_mono:
                continue
            health.probing = True
            ex = health.excluded
            if ex is not None:
                # The next one's time is known once this one is judged.
                ex.next_probe = None
            out.append(Probe(name, CONTINUOUS if ex is None else ex.episode))
        return out

    def next_due(self) -> float | None:
        """When the next probe is due or cooldown ends (monotonic), if any."""
        times = [self._next_probe(n, h) for n, h in self._health.items()]
        times += [h.excluded.until_mono for h in self._health.values() if h.excluded is not None]
        return min((t for t in times if t is not None), default=None)

    def _next_probe(self, name: str, health: ProviderHealth) -> float | None:
        if health.probing:
            return None
        if health.excluded is not None:
            return health.excluded.next_probe
        policy = self._policies.get(name)
        interval = self.settings.continuous_probe_interval_s
        if policy is None or not policy.watched or interval is None or health.last_seen is None:
            return None
        if name in self._in_flight:
            # Busy answering: a probe would wait behind it (a one-slot server)
            # and time out; its end sets last_seen.
            return None
        return health.last_seen + interval

    def probe_finished(
        self,
        provider: str,
        episode: int,
        *,
        ok: bool,
        latency_ms: float | None,
        now_mono: float,
        now_wall: float,
        u: float,
        reason: str | None = None,
        status: int | None = None,
        returned: bool = False,
    ) -> list[Decision]:
        """A probe's result. A recovery probe (the exclusion's episode) that
        succeeds restores the provider; a continuous one counts like an
        attempt. `returned`: answered with a 4xx a real request would get
        back (`ok` too: the backend is up)."""
        health = self._health.get(provider)
        if health is None:
            return []
        health.probing = False
        health.last_probe_wall, health.last_probe_ok = now_wall, ok
        health.last_probe_latency_ms = latency_ms
        health.last_seen = now_mono
        ex = health.excluded
        if episode == CONTINUOUS and ex is None:
            # A provider in service: its probe counts as an attempt would.
            outcome = "returned" if returned else "ok" if ok else "failed"
            return self.observe(
                provider,
                outcome=outcome,
                reason=reason,
                status=status,
                now_mono=now_mono,
                now_wall=now_wall,
                u=u,
            )
        if ex is None or ex.episode != episode:
            return []
        if ok:
            health.streak = 0
            return [self._restored(provider, health, "probe", now_mono, latency_ms)]
        ex.probes_failed += 1
        ex.next_probe = now_mono + self._delay(ex.probes_failed, u)
        return []

    def exclude_manual(self, provider: str, *, now_mono: float, now_wall: float) -> list[Decision]:
        """The operator takes `provider` out (KeyError: not configured); [] if
        it already was. An exclusion as unhealthy becomes a manual one."""
        policy = self._policies[provider]
        health = self._health.setdefault(provider, ProviderHealth())
        if health.excluded is not None and health.excluded.reason == MANUAL:
            return []
        self._episodes += 1
        health.excluded = Exclusion(MANUAL, now_wall, now_mono, self._episodes)
        self._changed()
        return [
            Exclude(
                provider,
                MANUAL,
                health.streak,
                policy.threshold,
                health.last_reason,
                health.last_status,
                self._episodes,
                now_wall,
            )
        ]

    def restore_manual(self, provider: str, *, now_mono: float) -> list[Decision]:
        """The operator puts `provider` back, however it was excluded
        (KeyError: not configured); [] if it was not."""
        if provider not in self._policies:
            raise KeyError(provider)
        health = self._health.get(provider)
        if health is None or health.excluded is None:
            return []
        health.streak = 0
        return [self._restored(provider, health, "manual", now_mono)]

    def probed_by_hand(
        self, provider: str, *, ok: bool, latency_ms: float | None, now_mono: float, now_wall: float
    ) -> list[Decision]:
        """`ctl probe`'s result: noted; a success restores a provider
        self-healing excluded (not one excluded by hand). The schedule of
        its own probes is left as it is."""
        if provider not in self._policies:
            raise KeyError(provider)
        health = self._health.get(provider)
        if health is None:
            health = self._health[provider] = ProviderHealth()
        health.last_probe_wall, health.last_probe_ok = now_wall, ok
        health.last_probe_latency_ms = latency_ms
        ex = health.excluded
        if not ok or ex is None or ex.reason == MANUAL:
            return []
        health.streak = 0
        return [self._restored(provider, health, "probe", now_mono, latency_ms)]
