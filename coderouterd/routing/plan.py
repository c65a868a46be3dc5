"""Turn a profile's chain into ordered attempts (pure).

Each pass may drop a provider and says why; the reasons travel into the
response headers, the log line and the all-failed error so an operator can
see why a provider was not tried.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from coderouterd.config.model import Config, ProfileConfig, ProviderConfig
from coderouterd.errors import MEMORY_PRESSURE, UnknownProfileError
from coderouterd.scrub import clip

# A profile by name; a mode: an alias from mode_aliases, or a profile name.
PROFILE_HEADER = "x-coderouter-profile"
MODE_HEADER = "x-coderouter-mode"

SKIP_PAID = "paid_blocked"
# Self-healing took the provider out (healing/policy.py); only profiles whose
# backend_health_action is `exclude` skip it.
SKIP_EXCLUDED = "excluded"
# Taken out by the operator (`ctl exclude`): skipped by every profile, like a
# missing key, even when that leaves a chain empty.
SKIP_EXCLUDED_MANUAL = "excluded_manual"
# Cooling down after saying it ran out of memory; only `skip` profiles skip it.
SKIP_MEMORY_PRESSURE = MEMORY_PRESSURE
# Its context window is smaller than the prompt; profiles with `context_action: off` try it.
SKIP_CONTEXT = "context_too_small"
# Every slot of its max_concurrent is taken: passed over at run time by the
# engine for the next provider, and tried after the rest (routing/slots.py).
SKIP_BUSY = "busy"
# What is skipped yet tried when nothing else is left.
_SOFT = frozenset({SKIP_EXCLUDED, SKIP_MEMORY_PRESSURE, SKIP_CONTEXT})


@dataclass(frozen=True, slots=True)
class Skip:
    provider: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    profile: str
    attempts: tuple[ProviderConfig, ...]
    skipped: tuple[Skip, ...]
    # Providers whose answers are drifting when the plan was made, and how badly.
    drift: Mapping[str, str] = field(default_factory=dict)
    # The attempts are providers skipped for soft reasons, tried as nothing
    # else was left: a soft reason met again at run time skips none of them.
    last_resort: bool = False
    # The providers skipped for soft reasons, in order, when the plan is not
    # the last resort: asked about again at run time when the attempts run
    # out with none tried that nothing skips (lineup.py).
    reserve: tuple[ProviderConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    """Which chain a request asked for: a profile, or one provider by name."""

    profile: str
    only_provider: str | None = None
    # The request chose nothing and the auto router is on: it picks the profile.
    auto: bool = False


def choose_route(
    config: Config,
    *,
    header: str | None,
    body_profile: str | None,
    model: str | None,
    profile_header: str | None = None,
) -> Route:
    """The x-coderouter-profile header, then the x-coderouter-mode header
    (`header`: a mode alias, else a profile name), then the body's `profile`
    field, then the model name, then the default.

    A model equal to a profile or provider name (as listed by /v1/models)
    selects it; any other model name leaves routing to the default profile,
    or to the auto router when `default_profile: auto` turns it on.
    """
    if profile_header is not None:
        return Route(_known(config, profile_header, PROFILE_HEADER))
    if header is not None:
        return Route(_mode(config, header))
    if body_profile is not None:
        return Route(_known(config, body_profile, "profile"))
    if model is not None:
        if config.profile(model) is not None:
            return Route(model)
        if config.provider(model) is not None:
            return Route(config.default_profile_name, only_provider=model)
    return Route(config.default_profile_name, auto=config.auto_routing is not None)


def _mode(config: Config, mode: str) -> str:
    """The profile a mode names: an alias first, else a profile of that name."""
    alias = config.mode_aliases.get(mode)
    if alias is not None:
        return alias
    if config.profile(mode) is None:
        modes = ", ".join(config.mode_aliases) or "none"
        known = ", ".join(p.name for p in config.profiles)
        raise UnknownProfileError(
            f"unknown mode {clip(mode)!r} (modes: {modes}; profiles: {known})", field=MODE_HEADER
        )
    return mode


def _known(config: Config, name: str, where: str) -> str:
    if config.profile(name) is None:
        known = ", ".join(p.name for p in config.profiles)
        raise UnknownProfileError(f"unknown profile {clip(name)!r} (known: {known})", field=where)
    return name


def plan_attempts(
    config: Config,
    route: Route,
    *,
    unavailable: Mapping[str, str] | None = None,
    excluded: Collection[str] = frozenset(),
    cooling: Collection[str] = frozenset(),
    drift: Mapping[str, str] | None = None,
    drift_demoted: Collection[str] = frozenset(),
    slow: Collection[str] = frozenset(),
    prompt_tokens: int | Callable[[str], int] | None = None,
    windows: Mapping[str, int] | None = None,
) -> Plan:
    """Ordered providers to try, with every skipped provider and its reason.

    `unavailable` maps a provider name to a reason decided elsewhere (a
    missing API key or translation, this month's budget spent). `excluded`
    names the providers self-healing took out: an `exclude` profile skips
    them, a `demote` profile tries them last. `cooling` names those cooling
    down after running out of memory: a `skip` profile skips them. Neither
    ever leaves a plan empty: when they are all that stands between a
    request and every provider, those providers are tried anyway, in order.
    `drift` names the providers whose answers drift (mild or severe), for
    the answer's header; a `demote` profile tries those of `drift_demoted`
    (severe, and not yet due to be tried in their place again) last, before
    those excluded.
    `slow` names the providers decoding far slower than they usually do: an
    `adaptive` profile tries each right after the provider that followed it
    (of two side by side, the second and then the first after the provider
    that followed both), before the demotions above. A profile whose
    `context_action` is not `off` skips a provider whose context window
    (`windows`, those its action goes by) is smaller than `prompt_tokens`:
    the prompt's estimate, or its estimate as the provider named is sent
    it (one that cannot call tools is sent none), asked only of a provider
    with a window.
    """
    profile = config.profile(route.profile)
    if profile is None:
        raise UnknownProfileError(f"unknown profile {clip(route.profile)!r}", field="profile")
    names = (route.only_provider,) if route.only_provider else profile.providers
    checked: list[tuple[str, str | None]] = []
    found: dict[str, ProviderConfig] = {}
    for name in names:
        provider = config.provider(name)
        if provider is None:  # config.check guarantees this cannot happen for profiles
            checked.append((name, "unknown_provider"))
            continue
        found[name] = provider
        reason = _skip_reason(config, profile, provider, unavailable or {})
        if reason is None:
            # Taken out by hand: `unavailable` says so (Daemon.unavailable).
            reason = rotation_skip(profile, name, excluded=excluded, cooling=cooling)
        if reason is None and prompt_tokens is not None and profile.context_action != "off":
            window = (windows or {}).get(name)
            if window is not None and _sent_to(name, prompt_tokens) > window:
                reason = SKIP_CONTEXT
        checked.append((name, reason))
    tried, skipped, last_resort = sort_out(checked)
    attempts = [found[name] for name in tried]
    reserve = [found[s.provider] for s in skipped if s.reason in _SOFT]
    if not last_resort:
        if slow and profile.adaptive:
            attempts = _slow_later(attempts, slow)
        if (excluded and profile.backend_health_action == "demote") or (
            drift_demoted and profile.drift_action == "demote"
        ):
            attempts.sort(key=_demotion(profile, excluded, drift_demoted))
    return Plan(
        profile.name, tuple(attempts), tuple(skipped), drift or {}, last_resort, tuple(reserve)
    )


def sort_out(checked: Sequence[tuple[str, str | None]]) -> tuple[list[str], list[Skip], bool]:
    """Of providers in order, each named with the reason to skip it (None:
    nothing skips it), those to try, those skipped with their reasons, and
    whether those to try are the last resort: when nothing is left that no
    reason skips, those only a soft reason skips are tried all the same.
    Asked by the plan, and again at run time of the providers it skipped
    for soft reasons, when the attempts run out (lineup.py)."""
    tried = [name for name, reason in checked if reason is None]
    skipped = [Skip(name, reason) for name, reason in checked if reason is not None]
    if tried or not any(s.reason in _SOFT for s in skipped):
        return tried, skipped, False
    soft = [s.provider for s in skipped if s.reason in _SOFT]
    return soft, [s for s in skipped if s.reason not in _SOFT], True


def rotation_skip(
    profile: ProfileConfig,
    name: str,
    *,
    manual: Collection[str] = frozenset(),
    excluded: Collection[str] = frozenset(),
    cooling: Collection[str] = frozenset(),
) -> str | None:
    """Why `profile` skips provider `name` taken out of rotation, or None:
    by the operator (`manual`: every profile), by self-healing (`excluded`:
    an `exclude` profile), cooling down after running out of memory
    (`cooling`: a `skip` profile). Asked by the plan, and again as an
    attempt starts (lineup.py) for what changed while the request waited."""
    if name in manual:
        return SKIP_EXCLUDED_MANUAL
    if name in excluded and profile.backend_health_action == "exclude":
        return SKIP_EXCLUDED
    if name in cooling and profile.memory_pressure_action == "skip":
        return SKIP_MEMORY_PRESSURE
    return None


def is_soft(reason: str) -> bool:
    """Whether a provider skipped for `reason` is tried all the same when
    nothing else is left to try."""
    return reason in _SOFT


def _sent_to(provider: str, prompt_tokens: int | Callable[[str], int]) -> int:
    return prompt_tokens if isinstance(prompt_tokens, int) else prompt_tokens(provider)


def _slow_later(attempts: list[ProviderConfig], slow: Collection[str]) -> list[ProviderConfig]:
    """Each slow provider right after the provider that followed it, the
    chain placed from its end: of two slow ones side by side, the first goes
    after the second, which went after the one that followed both."""
    placed: list[ProviderConfig] = []
    for i in range(len(attempts) - 1, -1, -1):
        p = attempts[i]
        if p.name in slow and i + 1 < len(attempts):
            follower = attempts[i + 1].name
            at = next(j for j, q in enumerate(placed) if q.name == follower)
            placed.insert(at + 1, p)
        else:
            placed.insert(0, p)
    return placed


def _demotion(
    profile: ProfileConfig, excluded: Collection[str], drifting: Collection[str]
) -> Callable[[ProviderConfig], tuple[bool, bool]]:
    """The sort key that moves demoted providers to the end, in order."""
    unhealthy = excluded if profile.backend_health_action == "demote" else ()
    drifted = drifting if profile.drift_action == "demote" else ()
    return lambda p: (p.name in unhealthy, p.name in drifted)


def _skip_reason(
    config: Config,
    profile: ProfileConfig,
    provider: ProviderConfig,
    unavailable: Mapping[str, str],
) -> str | None:
    allow_paid = profile.allow_paid if profile.allow_paid is not None else config.allow_paid
    if provider.paid and not allow_paid:
        return SKIP_PAID
    return unavailable.get(provider.name)
