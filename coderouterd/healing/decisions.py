"""What self-healing decides, and what it knows of each provider (pure values).

The book (policy.py) returns Decisions; the service (service.py) carries
them out. `next_probe_delay` is the back-off between recovery probes.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from coderouterd.config.model import Config, SelfHealingConfig

UNHEALTHY = "unhealthy"
# Taken out by the operator (`ctl exclude`): skipped by every profile, never
# probed or restarted, back only by `ctl restore`.
MANUAL = "manual"
AUTH_STATUSES = frozenset({401, 403})
# The backend_health_actions whose threshold excludes a provider.
_EXCLUDING = frozenset({"exclude", "demote"})


@dataclass(frozen=True, slots=True)
class Exclude:
    provider: str
    reason: str
    consecutive_failures: int
    threshold: int | None
    last_reason: str | None
    last_status: int | None
    episode: int
    since_wall: float
    # A cooldown's end (memory pressure); None: until restored.
    until_wall: float | None = None


@dataclass(frozen=True, slots=True)
class MemoryPressure:
    """A backend said it ran out of memory (logged; `skip` profiles also cool it down)."""

    provider: str
    status: int | None
    # None: no profile that lists it skips it.
    cooldown_s: float | None


@dataclass(frozen=True, slots=True)
class Restore:
    provider: str
    # "probe", "request", "manual" (`ctl restore`), "expired" (a cooldown
    # ended) or "config_removed".
    via: str
    excluded_for_s: float
    probes_failed: int
    episode: int
    latency_ms: float | None = None


@dataclass(frozen=True, slots=True)
class Restart:
    provider: str
    argv: tuple[str, ...]
    timeout_s: float
    episode: int


@dataclass(frozen=True, slots=True)
class RestartSkipped:
    provider: str
    # "running" or "too_soon".
    why: str
    next_allowed_in_s: float | None
    episode: int


@dataclass(frozen=True, slots=True)
class Probe:
    provider: str
    # The exclusion's episode; CONTINUOUS for a probe of a provider in service.
    episode: int


CONTINUOUS = 0


Decision = Exclude | MemoryPressure | Restore | Restart | RestartSkipped | Probe


def next_probe_delay(failed: int, settings: SelfHealingConfig, u: float) -> float:
    """Seconds until the next probe after `failed` failed probes; `u` in [0, 1)
    places it within +-jitter of the doubled delay."""
    base = min(
        settings.recovery_max_interval_s,
        settings.recovery_initial_interval_s * 2.0 ** min(failed, 32),
    )
    return base * (1 + settings.recovery_jitter * (2 * u - 1))


@dataclass(slots=True)
class Exclusion:
    reason: str
    since_wall: float
    since_mono: float
    episode: int
    probes_failed: int = 0
    # When the next probe is due (monotonic); None while a restart runs or
    # its probe is out, and for exclusions that are not probed (manual, a
    # cooldown).
    next_probe: float | None = None
    # When a cooldown ends (monotonic and wall time); None: until restored.
    until_mono: float | None = None
    until_wall: float | None = None


@dataclass(slots=True)
class ProviderHealth:
    """What the book knows of one provider; `ctl status` shows it."""

    streak: int = 0
    last_failure: float | None = None
    last_reason: str | None = None
    last_status: int | None = None
    excluded: Exclusion | None = None
    probing: bool = False
    restarting: bool = False
    # The episode whose restart_command runs (or ran last): the end of that
    # run, and of no other, clears `restarting`.
    restart_episode: int | None = None
    # When its restart_command last started (monotonic), by this daemon or,
    # from the audit log, by the one before it.
    last_restart: float | None = None
    restarts: int = 0
    last_probe_wall: float | None = None
    last_probe_ok: bool | None = None
    last_probe_latency_ms: float | None = None
    # When the provider last answered anything, or was last probed (monotonic).
    last_seen: float | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """How self-healing treats one provider, from the profiles that list it."""

    # None: no `exclude` or `demote` profile lists the provider: never excluded.
    threshold: int | None
    restart: tuple[str, ...] | None
    restart_timeout_s: float
    # Probed continuously while in service (continuous_probe_interval_s, not paid).
    watched: bool
    # Memory pressure: logged unless every profile listing it is `off`; cooled
    # down for the longest cooldown among its `skip` profiles (None: none).
    pressure_noted: bool = False
    cooldown_s: float | None = None


def policies_for(config: Config) -> dict[str, Policy]:
    """Each provider's policy: the smallest backend_health_threshold among its
    `exclude` and `demote` profiles (an exclusion is what `demote` moves to
    the end of the chain: without one the action would never act), the
    longest memory_pressure_cooldown_s among its `skip` ones."""
    thresholds: dict[str, int] = {}
    cooldowns: dict[str, float] = {}
    noted: set[str] = set()
    for profile in config.profiles:
        for name in profile.providers:
            if profile.backend_health_action in _EXCLUDING:
                t = profile.backend_health_threshold
                thresholds[name] = min(t, thresholds.get(name, t))
            if profile.memory_pressure_action != "off":
                noted.add(name)
            if profile.memory_pressure_action == "skip":
                c = float(profile.memory_pressure_cooldown_s)
                cooldowns[name] = max(c, cooldowns.get(name, c))
    watching = config.self_healing.continuous_probe_interval_s is not None
    return {
        p.name: Policy(
            thresholds.get(p.name),
            p.restart_command,
            p.restart_timeout_s,
            watching and not p.paid,
            p.name in noted,
            cooldowns.get(p.name),
        )
        for p in config.providers
    }


def describe(config: Config) -> list[str]:
    """What self-healing will do with each provider, a line each (`coderouterd check`)."""
    lines = []
    for name, policy in policies_for(config).items():
        parts = []
        if policy.threshold is not None:
            parts.append(f"excluded after {2 * policy.threshold} failed attempts in a row")
        if policy.cooldown_s is not None:
            parts.append(f"cooled down {policy.cooldown_s:g} s when out of memory")
        if policy.restart is not None:
            parts.append(f"restart: {shlex.join(policy.restart)}")
        if policy.watched:
            parts.append("probed while in service")
        lines.append(f"{name}: {'; '.join(parts) if parts else 'never taken out automatically'}")
    return lines
