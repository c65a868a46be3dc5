"""One generation of configuration and everything built from it.

A reload builds a whole new Runtime and swaps it in with one assignment;
requests already running keep the generation they started with. Adapters
whose provider config did not change are carried over, so their pooled
connections survive a reload; the others are retired, and closed once no
request uses them (providers/retirement.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from coderouterd.clock import Clock
from coderouterd.config import LoadedConfig
from coderouterd.config.model import Config, ProviderConfig
from coderouterd.providers.anthropic import AnthropicAdapter
from coderouterd.providers.base import HttpAdapter
from coderouterd.providers.openai_compat import OpenAICompatAdapter
from coderouterd.routing.all_failed import LearnedOf
from coderouterd.routing.auto import AutoRouter
from coderouterd.routing.engine import BudgetCheck, Engine, RotationCheck
from coderouterd.routing.plan import rotation_skip
from coderouterd.routing.records import Observer
from coderouterd.routing.slots import Slots
from coderouterd.routing.streams import KeepAlive
from coderouterd.routing.upstream import ProviderRoute
from coderouterd.translate.capabilities import ModelCapabilities, load_registry
from coderouterd.translate.codecs import codecs_for

SKIP_MISSING_KEY = "missing_api_key"
SKIP_NO_TRANSLATION = "dialect_not_supported"
DIALECTS = ("anthropic", "openai")


class Rotation(Protocol):
    """The providers out of rotation as of now (the self-healing book)."""

    def manual(self) -> Collection[str]: ...
    def excluded(self) -> Collection[str]: ...
    def cooling(self) -> Collection[str]: ...


@dataclass(frozen=True, slots=True)
class Runtime:
    loaded: LoadedConfig
    adapters: Mapping[str, HttpAdapter]
    engine: Engine
    # By client dialect: providers that cannot be tried, with the reason.
    unavailable: Mapping[str, Mapping[str, str]]
    # Providers with a monthly budget, the only ones the budget gate looks at.
    budgeted: tuple[ProviderConfig, ...] = ()
    # With `default_profile: auto`: picks the profile of a request that names none.
    auto_router: AutoRouter | None = None
    # What each provider's model can do: the capability rules, then its own.
    capabilities: Mapping[str, ModelCapabilities] = field(default_factory=dict)
    # Each provider's context window in tokens, where its capabilities say.
    context_windows: Mapping[str, int] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return self.loaded.config

    def unavailable_for(self, dialect: str) -> Mapping[str, str]:
        return self.unavailable[dialect]


def build_runtime(
    loaded: LoadedConfig,
    *,
    env: Mapping[str, str],
    observer: Observer,
    clock: Clock,
    previous: Runtime | None = None,
    slots: Slots | None = None,
    budget_spent: BudgetCheck | None = None,
    rotation: Rotation | None = None,
    learned: LearnedOf | None = None,
) -> Runtime:
    """`slots`: the daemon's provider slots, shared by every generation;
    `budget_spent`: whether a provider's budget ran out, and `rotation`:
    which providers are out of rotation, both asked as each attempt starts;
    `learned`: the windows learned of the providers (LearnedWindows.learned)."""
    config = loaded.config
    registry = load_registry(config.capabilities_file)
    adapters: dict[str, HttpAdapter] = {}
    routes: dict[str, ProviderRoute] = {}
    unavailable: dict[str, dict[str, str]] = {d: {} for d in DIALECTS}
    capabilities: dict[str, ModelCapabilities] = {}
    windows: dict[str, int] = {}
    for provider in config.providers:
        key = _api_key(provider, env)
        adapter = _reuse(previous, provider, key) or _new_adapter(provider, key)
        adapters[provider.name] = adapter
        caps = capabilities[provider.name] = registry.lookup(
            provider.kind, provider.model, provider.capabilities
        )
        codecs = codecs_for(provider, caps)
        routes[provider.name] = ProviderRoute(adapter, codecs)
        if caps.max_context_tokens is not None:
            windows[provider.name] = caps.max_context_tokens
        for dialect in DIALECTS:
            if not adapter.has_credentials:
                unavailable[dialect][provider.name] = SKIP_MISSING_KEY
            elif dialect not in codecs:
                unavailable[dialect][provider.name] = SKIP_NO_TRANSLATION
    keepalive = KeepAlive(config.server.keepalive_after_s, config.server.keepalive_interval_s)
    engine = Engine(
        routes, observer, clock, keepalive, slots,
        budget_spent=budget_spent, learned=learned, windows=windows,
        out_of_rotation=None if rotation is None else _rotation_check(config, rotation),
    )  # fmt: skip
    budgeted = tuple(
        p for p in config.providers if p.cost and p.cost.monthly_budget_usd is not None
    )
    auto = config.auto_routing
    router = AutoRouter(auto) if auto is not None else None
    return Runtime(loaded, adapters, engine, unavailable, budgeted, router, capabilities, windows)


def _rotation_check(config: Config, rotation: Rotation) -> RotationCheck:
    """What the plan asks of a provider out of rotation, under the profile
    of this generation's config the request's plan was made from."""

    def out_of_rotation(profile: str, provider: str) -> str | None:
        chosen = config.profile(profile)
        if chosen is None:
            return None
        return rotation_skip(
            chosen, provider,
            manual=rotation.manual(), excluded=rotation.excluded(), cooling=rotation.cooling(),
        )  # fmt: skip

    return out_of_rotation


def retired_adapters(old: Runtime, new: Runtime) -> list[HttpAdapter]:
    kept = {id(a) for a in new.adapters.values()}
    return [a for a in old.adapters.values() if id(a) not in kept]


def _new_adapter(provider: ProviderConfig, key: str | None) -> HttpAdapter:
    if provider.kind == "anthropic":
        return AnthropicAdapter(provider, api_key=key)
    return OpenAICompatAdapter(provider, api_key=key)


def _api_key(provider: ProviderConfig, env: Mapping[str, str]) -> str | None:
    return env.get(provider.api_key_env) if provider.api_key_env else None


def _reuse(
    previous: Runtime | None, provider: ProviderConfig, key: str | None
) -> HttpAdapter | None:
    if previous is None:
        return None
    old = previous.adapters.get(provider.name)
    if old is not None and old.config == provider and old.api_key == key:
        return old
    return None
