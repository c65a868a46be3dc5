"""One generation of configuration and everything built from it.

A reload builds a whole new Runtime and swaps it in with one assignment;
requests already running keep the generation they started with. Adapters
whose provider config did not change are carried over, so their pooled
connections survive a reload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from coderouterd.clock import Clock
from coderouterd.config import LoadedConfig
from coderouterd.config.model import Config, ProviderConfig
from coderouterd.providers.anthropic import AnthropicAdapter
from coderouterd.routing.engine import Engine, KeepAlive
from coderouterd.routing.records import Observer

SKIP_MISSING_KEY = "missing_api_key"
SKIP_UNSUPPORTED_KIND = "kind_not_supported"


@dataclass(frozen=True, slots=True)
class Runtime:
    loaded: LoadedConfig
    adapters: Mapping[str, AnthropicAdapter]
    engine: Engine
    # Providers that cannot be tried at all, with the reason; planning skips them.
    unavailable: Mapping[str, str]

    @property
    def config(self) -> Config:
        return self.loaded.config


def build_runtime(
    loaded: LoadedConfig,
    *,
    env: Mapping[str, str],
    observer: Observer,
    clock: Clock,
    previous: Runtime | None = None,
) -> Runtime:
    config = loaded.config
    adapters: dict[str, AnthropicAdapter] = {}
    unavailable: dict[str, str] = {}
    for provider in config.providers:
        if provider.kind != "anthropic":
            unavailable[provider.name] = SKIP_UNSUPPORTED_KIND
            continue
        key = _api_key(provider, env)
        adapter = _reuse(previous, provider, key) or AnthropicAdapter(provider, api_key=key)
        adapters[provider.name] = adapter
        if not adapter.has_credentials:
            unavailable[provider.name] = SKIP_MISSING_KEY
    keepalive = KeepAlive(config.server.keepalive_after_s, config.server.keepalive_interval_s)
    engine = Engine(adapters, observer, clock, keepalive)
    return Runtime(loaded, adapters, engine, unavailable)


def retired_adapters(old: Runtime, new: Runtime) -> list[AnthropicAdapter]:
    kept = {id(a) for a in new.adapters.values()}
    return [a for a in old.adapters.values() if id(a) not in kept]


def _api_key(provider: ProviderConfig, env: Mapping[str, str]) -> str | None:
    return env.get(provider.api_key_env) if provider.api_key_env else None


def _reuse(
    previous: Runtime | None, provider: ProviderConfig, key: str | None
) -> AnthropicAdapter | None:
    if previous is None:
        return None
    old = previous.adapters.get(provider.name)
    if old is not None and old.config == provider and old.api_key == key:
        return old
    return None
