"""What self-healing decides, and what it knows of each provider (pure values).

The book (policy.py) returns Decisions; the service (service.py) carries
them out. `next_probe_delay` is the back-off between recovery probes.
"""

from __future__ import annotations

from dataclasses import dataclass

from coderouterd.config.model import SelfHealingConfig

UNHEALTHY = "unhealthy"
# Taken out by the operator (`ctl exclude`): skipped by every profile, never
# probed or restarted, back only by `ctl restore`.
MANUAL = "manual"
AUTH_STATUSES = frozenset({401, 403})


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


@dataclass(frozen=True, slots=True)
class Restore:
    provider: str
    # "probe", "request", "manual" (`ctl restore`) or "config_removed".
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


Decision = Exclude | Restore | Restart | RestartSkipped | Probe


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
    # When the next probe is due (monotonic); None while a restart runs.
    next_probe: float | None = None


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
    last_restart: float | None = None
    restarts: int = 0
    last_probe_wall: float | None = None
    last_probe_ok: bool | None = None
    last_probe_latency_ms: float | None = None
    # When the provider last answered anything, or was last probed (monotonic).
    last_seen: float | None = None
